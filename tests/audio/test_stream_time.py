"""PortAudio's stream times on the monotonic clock (device.audio.stream_time)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from device.audio.stream_time import monotonic_at
from device.simhw.pulse import VirtualSoundCard
from tests.audio.rig import busy

BOOT = 1_000.0
"""The fake monotonic clock's reading when PortAudio read its own."""
EPOCH = 1_796_000_000.0
"""The fake wall clock's reading then."""


class Clocks:
    """A monotonic and a wall clock that advance together by `late` seconds (a callback that
    runs after PortAudio read its clock)."""

    def __init__(self, late: float) -> None:
        self.late = late

    def monotonic(self) -> float:
        return BOOT + self.late

    def wall(self) -> float:
        return EPOCH + self.late


@pytest.mark.unit
@pytest.mark.parametrize("late", [0.0, 0.005, 0.018, 0.25])
def test_a_wall_clock_stream_time_maps_to_the_moment_it_was_read_however_late_the_callback(
    late: float,
) -> None:
    clocks = Clocks(late)
    at = monotonic_at(EPOCH, monotonic=clocks.monotonic, wall=clocks.wall)
    assert at == pytest.approx(BOOT, abs=1e-6)


@pytest.mark.unit
def test_a_monotonic_stream_time_is_itself_and_an_unknown_one_is_the_callbacks_time() -> None:
    clocks = Clocks(0.02)
    assert monotonic_at(BOOT, monotonic=clocks.monotonic, wall=clocks.wall) == BOOT
    # a host API that reports no time (0.0): the callback's own monotonic time
    assert monotonic_at(0.0, monotonic=clocks.monotonic, wall=clocks.wall) == BOOT + 0.02


@pytest.mark.unit
def test_clocks_close_together_a_pi_booted_into_1970_the_closer_one_is_the_streams() -> None:
    """Without a real-time clock the wall clock starts near the monotonic one: 5 s apart here."""

    def mono() -> float:
        return BOOT + 0.01

    def wall() -> float:
        return BOOT + 5.0 + 0.01

    assert monotonic_at(BOOT, monotonic=mono, wall=wall) == BOOT
    assert monotonic_at(BOOT + 5.0, monotonic=mono, wall=wall) == pytest.approx(BOOT)


@pytest.mark.integration
def test_portaudios_stream_time_is_on_a_clock_the_mapping_knows(
    sound_card: VirtualSoundCard,
) -> None:
    """On the rig's PortAudio (Debian's), with a busy Python thread beside the callback: the
    callback's `currentTime` is on the wall clock or the monotonic one (else the mapping falls
    back to the callback's own time, late by what the GIL costs), and each DAC time it maps lies
    after the callback less the callback's lateness (milliseconds), within the device's buffer."""
    import sounddevice as sd

    seen: list[tuple[float, float, float, float]] = []
    stop = threading.Event()

    def callback(outdata: Any, frames: int, info: Any, status: Any) -> None:
        outdata.fill(0)
        now, wall = time.monotonic(), time.time()
        current = info.currentTime
        seen.append(
            (now, wall, current, monotonic_at(current) + info.outputBufferDacTime - current)
        )

    worker = threading.Thread(target=busy, args=(stop,), daemon=True)
    worker.start()
    try:
        with sd.OutputStream(samplerate=48_000, channels=2, blocksize=960, callback=callback):
            time.sleep(1.0)
    finally:
        stop.set()
        worker.join()
    assert len(seen) > 20
    for now, wall, current, heard_at in seen[10:]:
        assert abs(current - wall) < 1.0 or abs(current - now) < 1.0, (current, wall, now)
        assert now - 0.1 < heard_at < now + 1.0
