"""Check: the speaker plays a test tone; whether the microphone hears it, and how loud (echo).

Which echo_mode suits the room is the echo check's to say (device.doctor.echo): it measures
whether the canceller removes that echo; a tone alone cannot tell half duplex from aec."""

from __future__ import annotations

import numpy as np

from device.config import EchoMode
from device.doctor.audio_io import (
    AudioTimeout,
    dbfs,
    device_failed,
    play_while_capturing,
    tone_levels,
)
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus

NAME = "speaker"
TONE_HZ = 1000.0
TONE_AMPLITUDE = 0.25
"""About -12 dBFS: clearly audible, not startling."""
HEARD_MARGIN_DB = 10.0
"""The tone counts as heard when its band is this much above the band's level in silence."""


def make_tone(rate: int, seconds: float) -> np.ndarray:
    """A sine at TONE_HZ with 20 ms fades, int16."""
    t = np.arange(int(rate * seconds)) / rate
    tone = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    fade = min(len(t) // 2, int(rate * 0.02))
    ramp = np.linspace(0.0, 1.0, fade)
    tone[:fade] *= ramp
    tone[len(tone) - fade :] *= ramp[::-1]
    return (tone * 32767).astype(np.int16)


def check(ctx: DoctorContext) -> CheckResult:
    """Play the tone while recording; report whether and how loud the microphone hears it."""
    import sounddevice as sd

    if ctx.output_device is None or ctx.output_rate is None:
        return CheckResult(NAME, CheckStatus.SKIP, "no usable speaker (see audio_devices)")
    if ctx.input_device is None or ctx.input_rate is None:
        return CheckResult(NAME, CheckStatus.SKIP, "no usable microphone to listen for the tone")
    tone = make_tone(ctx.output_rate, ctx.tone_seconds)
    try:
        played, rec = play_while_capturing(
            ctx.output_device, ctx.output_rate, tone, ctx.input_device, ctx.input_rate
        )
    except (AudioTimeout, sd.PortAudioError) as exc:
        return device_failed(NAME, "test tone", exc)
    levels = tone_levels(rec.samples, ctx.input_rate, TONE_HZ)
    quiet = float(np.percentile(levels, 10)) if len(levels) else 0.0
    loud = float(np.percentile(levels, 90)) if len(levels) else 0.0
    echo_db = float(dbfs(loud))
    margin = echo_db - float(dbfs(quiet))
    heard = margin >= HEARD_MARGIN_DB
    numbers: dict[str, float | int | str | bool | list[int] | list[str] | None] = {
        "tone_hz": TONE_HZ,
        "tone_dbfs": round(float(dbfs(TONE_AMPLITUDE * 32767)), 1),
        "played_s": round(played.frames / ctx.output_rate, 3),
        "underflows": played.underflows,
        "echo_heard": heard,
        "echo_dbfs": round(echo_db, 1),
        "echo_margin_db": round(margin, 1),
        "configured_echo_mode": ctx.cfg.audio.echo_mode.value,
    }
    if heard:
        detail = f"tone played; the microphone hears it at {echo_db:.1f} dBFS ({margin:.0f} dB above silence)"
    else:
        detail = "tone played; the microphone does not hear it (headset, AEC, or speaker off?)"
    if heard and ctx.cfg.audio.echo_mode is EchoMode.FULL_DUPLEX:
        detail += "; echo_mode = full_duplex would let the model hear itself (see the echo check)"
        return CheckResult(NAME, CheckStatus.WARN, detail, numbers)
    return CheckResult(NAME, CheckStatus.PASS, detail, numbers)
