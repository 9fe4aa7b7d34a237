"""PortAudio's stream times on the monotonic clock.

A PortAudio callback is told when its first sample was captured (`inputBufferAdcTime`) or will
be heard (`outputBufferDacTime`), and the stream's time then (`currentTime`), on PortAudio's own
clock: the wall clock (CLOCK_REALTIME) on Linux, as measured with Debian 12's libportaudio2 19.6.
The microphone's and the speaker's timelines (device.audio.aec) live on the monotonic clock.

Mapping with the callback's own `time.monotonic()` (`now - (currentTime - adc)`) assumes that the
Python callback runs the moment PortAudio read its clock. It runs once it has the GIL: with one
busy Python thread beside it (the loop scoring the wake word), 5.2 ms later at the median and up
to 10 ms (tests/bench/bench_stream_time.py), and that lateness moved the timelines with the load
(the speaker's: 0.44 ms std, up to 5.2 ms, where the device's own times hold within 0.03 ms),
and the echo against its reference with them. Reading the wall clock and the monotonic clock
together gives their offset whenever the callback runs, and so the monotonic time PortAudio
meant.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SAME_CLOCK_S = 60.0
"""A stream time this close to a clock's reading can be on that clock (two clocks on one machine
differ by the boot's age or the epoch's, unless a Pi without a clock booted into 1970: then the
closer of the two is the one)."""


def monotonic_at(
    current: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> float:
    """The monotonic time of PortAudio's stream time `current` (the callback's `currentTime`).

    On a wall-clock stream time (Linux) the two clocks are read together, so a callback that
    runs late maps to the same time; a stream time on the monotonic clock is itself; on a clock
    that is neither (0.0 from a host API that reports none) the callback's own time, as if it
    ran at once."""
    mono, now = monotonic(), wall()
    from_wall, from_mono = abs(current - now), abs(current - mono)
    if min(from_wall, from_mono) >= SAME_CLOCK_S:
        return mono
    return current - (now - mono) if from_wall <= from_mono else current
