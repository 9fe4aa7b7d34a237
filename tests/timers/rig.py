"""Hearing the ring at the rig's speaker monitor, on the clocks the timers run on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from device.audio.earcons import RING_HZ
from device.simhw.pulse import SpeakerRecording
from tests.app.harness import BUTTON, Rig

RATE = 48000
WINDOW = RATE // 50  # 20 ms
HOP = RATE // 200  # 5 ms


def boottime() -> float:
    """CLOCK_BOOTTIME, the clock timers run on within a boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class RecordingClock:
    """Maps recording sample indexes to a clock (default CLOCK_BOOTTIME) by sampling how many
    samples the recorder has written while it runs: sample i was recorded at about t0 + i / rate,
    t0 the earliest (clock - samples / rate) seen (a late write only makes that estimate later)."""

    def __init__(self, rec: SpeakerRecording, clock: Callable[[], float] = boottime) -> None:
        self._rec = rec
        self._clock = clock
        self.t0 = float("inf")

    def sample(self) -> None:
        """One reading of the clock and the samples written so far."""
        self.t0 = min(self.t0, self._clock() - self._rec.recorded() / RATE)

    async def run(self) -> None:
        """Sample every 10 ms until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(0.01)

    def at(self, index: int) -> float:
        """The clock's time when sample `index` was recorded."""
        return self.t0 + index / RATE


def ring_frames(x: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    """Per 5 ms hop: whether the 20 ms window starting there is mostly the ring's tone."""
    n = max(0, (len(x) - WINDOW) // HOP + 1)
    if n == 0:
        return np.zeros(0, bool)
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx].astype(np.float64)
    win = np.hanning(WINDOW)
    ref = win * np.exp(-2j * np.pi * RING_HZ * np.arange(WINDOW) / RATE)
    amp = 2 * np.abs(frames @ ref) / win.sum()
    power = np.mean((frames * win) ** 2, axis=1) / np.mean(win**2)
    tonal = (amp**2 / 2) / np.maximum(power, 1.0)
    return np.asarray((amp > 300) & (tonal > 0.6), bool)


def ring_span(x: npt.NDArray[np.int16], clock: RecordingClock) -> tuple[float, float] | None:
    """(onset, end) of the ring in a recording on the clock, or None when none is heard.
    The first window holding the ring holds it for about half its length."""
    tone = ring_frames(x)
    if not tone.any():
        return None
    first, last = int(np.argmax(tone)), len(tone) - 1 - int(np.argmax(tone[::-1]))
    return clock.at(first * HOP + WINDOW // 2), clock.at(last * HOP + WINDOW)


def beeps(x: npt.NDArray[np.int16]) -> int:
    """How many separate beeps of the ring are in a recording."""
    tone = ring_frames(x).astype(int)
    return int(np.sum(np.diff(tone) == 1) + (tone[0] if len(tone) else 0))


def rgb_samples(rig: Rig, seconds: float) -> set[tuple[float, float, float]]:
    """Every RGB level seen over `seconds` (blocking: run in a thread)."""
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(rig.pins())
        time.sleep(0.01)
    return seen


def press(rig: Rig) -> float:
    """Press and release the button (blocking); returns the boottime of the press."""
    pin = rig.factory.pin(BUTTON)
    t = boottime()
    pin.drive_low()
    time.sleep(0.15)
    pin.drive_high()
    return t
