"""What the checks share: the config, options, and what earlier checks found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from device.config import Config


@dataclass
class DoctorContext:
    """Passed to every check in order; checks may record facts for later ones."""

    cfg: Config
    mic_seconds: float = 3.0
    """How long the microphone level is measured."""
    tone_seconds: float = 1.5
    """How long the speaker test tone plays."""
    input_device: int | None = None
    """PortAudio index of the microphone, once audio_devices found it."""
    output_device: int | None = None
    """PortAudio index of the speaker, once audio_devices found it."""
    input_rate: int | None = None
    """A rate the microphone accepts (16 kHz preferred)."""
    output_rate: int | None = None
    """A rate the speaker accepts (its default rate preferred)."""
    pin_factory: Any = None
    """A gpiozero pin factory to use instead of the configured one (tests)."""
    notes: dict[str, object] = field(default_factory=dict)
    """Free-form facts for later checks (e.g. the microphone noise floor)."""
