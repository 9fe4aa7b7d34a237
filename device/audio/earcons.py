"""Short generated sounds (24 kHz mono int16, the model's rate, so they go through `Speaker.play`).

Non-error sounds are bright sine notes; error sounds share a low, buzzy timbre so "something is
wrong" is clear at once, and differ in rhythm so the kind can be told apart by ear:

| sound          | pattern                                   |
|----------------|-------------------------------------------|
| wake           | two rising notes, quick                   |
| end            | two falling notes, quick                  |
| mute on        | falling fifth, slower and lower           |
| mute off       | rising fifth, slower and lower            |
| no network     | three short low beeps                     |
| bad key        | two long low beeps                        |
| quota          | three beeps falling in pitch              |
| server         | one long low buzz                         |
| audio device   | five rapid clicks                         |
| config         | low-high-low                              |
| ring           | four high beeps, then a rest (0.96 s; repeated by device.timers.ringer) |
"""

from __future__ import annotations

import functools
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from device.events import MODEL_RATE, ErrorKind

RATE = MODEL_RATE
AMPLITUDE = 0.3
RAMP_S = 0.006
RING_HZ = 2093.0
"""The ring's pitch (C7): higher than every other sound here, so it is told apart at once."""


class Earcon(StrEnum):
    """Non-error sounds."""

    WAKE = "wake"
    """The wake word (or button) opened a conversation."""
    END = "end"
    """The conversation ended."""
    MUTE_ON = "mute_on"
    """The microphone was muted."""
    MUTE_OFF = "mute_off"
    """The microphone was unmuted."""
    RING = "ring"
    """One cycle of a timer's or alarm's ring (played whatever audio.earcons says)."""


Note = tuple[float, float]
"""(frequency in Hz, or 0 for a pause; duration in seconds)"""

PATTERNS: dict[Earcon | ErrorKind, tuple[bool, list[Note]]] = {
    # (buzzy timbre?, notes)
    Earcon.WAKE: (False, [(880, 0.07), (0, 0.02), (1320, 0.09)]),
    Earcon.END: (False, [(1320, 0.07), (0, 0.02), (880, 0.09)]),
    Earcon.MUTE_ON: (False, [(660, 0.12), (0, 0.03), (440, 0.18)]),
    Earcon.MUTE_OFF: (False, [(440, 0.12), (0, 0.03), (660, 0.18)]),
    Earcon.RING: (False, [(RING_HZ, 0.08), (0, 0.04)] * 4 + [(0, 0.48)]),
    ErrorKind.NO_NETWORK: (True, [(330.0, 0.08), (0.0, 0.08)] * 2 + [(330.0, 0.08)]),
    ErrorKind.BAD_KEY: (True, [(260, 0.3), (0, 0.12), (260, 0.3)]),
    ErrorKind.QUOTA: (True, [(440, 0.12), (0, 0.05), (370, 0.12), (0, 0.05), (294, 0.2)]),
    ErrorKind.SERVER: (True, [(220, 0.6)]),
    ErrorKind.AUDIO_DEVICE: (True, [(500.0, 0.025), (0.0, 0.05)] * 4 + [(500.0, 0.025)]),
    ErrorKind.CONFIG: (True, [(262, 0.12), (0, 0.04), (392, 0.12), (0, 0.04), (262, 0.12)]),
}


def _note(freq: float, dur: float, buzzy: bool) -> npt.NDArray[np.float64]:
    t = np.arange(round(dur * RATE)) / RATE
    if freq <= 0:
        return np.zeros(len(t))
    if buzzy:  # odd harmonics: a soft square wave
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 3, 5, 7)) * 0.8
    else:
        tone = np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t)
    ramp = min(int(RAMP_S * RATE), len(t) // 2)
    env = np.ones(len(t))
    if ramp:
        r = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp] = r
        env[-ramp:] = r[::-1]
    return np.asarray(tone * env, np.float64)


@functools.cache
def render(kind: Earcon | ErrorKind) -> npt.NDArray[np.int16]:
    """The sound for an earcon or an error kind, 24 kHz mono int16 (cached; do not modify)."""
    buzzy, notes = PATTERNS[kind]
    x = np.concatenate([_note(f, d, buzzy) for f, d in notes])
    peak = float(np.max(np.abs(x))) or 1.0
    out = np.rint(x / peak * AMPLITUDE * 32767).astype(np.int16)
    out.setflags(write=False)
    return out


def pcm(kind: Earcon | ErrorKind) -> bytes:
    """The sound as bytes for `Speaker.play`."""
    return render(kind).tobytes()
