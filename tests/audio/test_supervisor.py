"""The reopen loop with a scripted opener: one event per outage, backoff, recovery, no crash."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from device.audio.devices import DeviceBusy, DeviceNotFound, Direction
from device.audio.supervisor import DeviceEvent, DeviceSupervisor
from device.events import AudioDeviceFailed, AudioDeviceRecovered
from tests.audio.rig import wait_for

pytestmark = pytest.mark.unit


class FakeStream:
    def __init__(self) -> None:
        self.dead: str | None = None
        self.closed = False

    def failure(self) -> str | None:
        return self.dead

    def close(self) -> None:
        self.closed = True


class ScriptedOpener:
    """Raises the scripted errors in turn, then opens streams."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0
        self.streams: list[FakeStream] = []

    def __call__(self) -> FakeStream:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.streams.append(FakeStream())
        return self.streams[-1]


async def test_busy_then_ok_then_unplugged_then_back() -> None:
    busy = DeviceBusy("input device 'USB mic' is busy: another program is using it")
    opener = ScriptedOpener([busy, busy, busy])
    events: list[DeviceEvent] = []
    reinits: list[int] = []
    sup = DeviceSupervisor(
        Direction.INPUT,
        opener,
        events.append,
        initial_backoff_s=0.01,
        poll_s=0.01,
        settle_s=0.0,
        reinit=lambda: reinits.append(1) is None,
    )
    task = asyncio.create_task(sup.run(), name="supervisor")
    try:
        with pytest.raises(DeviceBusy):
            await sup.wait_started(5)
        await asyncio.wait_for(sup.ready.wait(), 5)
        assert opener.calls == 4  # three busy answers, retried
        assert len(reinits) == 3  # devices re-enumerated before each retry
        assert events == [AudioDeviceFailed("input", str(busy)), AudioDeviceRecovered("input")]
        opener.errors = [DeviceNotFound("no input audio device matching 'USB mic'")] * 2
        opener.streams[0].dead = "input stream on 'USB mic' stopped"
        await wait_for(lambda: len(events) == 4, 5, "failure and recovery")
        assert opener.streams[0].closed
        assert events[2] == AudioDeviceFailed("input", "input stream on 'USB mic' stopped")
        assert events[3] == AudioDeviceRecovered("input")  # not-found retries: no extra events
        assert sup.ready.is_set()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert opener.streams[-1].closed  # closed on cancel too


async def test_a_failing_event_handler_does_not_stop_the_loop() -> None:
    def broken(event: DeviceEvent) -> None:
        raise RuntimeError("handler bug")

    opener = ScriptedOpener([DeviceBusy("busy")])
    sup = DeviceSupervisor(
        Direction.OUTPUT, opener, broken, initial_backoff_s=0.01, reinit=lambda: True
    )
    task = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await asyncio.wait_for(sup.ready.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_unexpected_open_errors_are_retried_not_raised() -> None:
    opener = ScriptedOpener([OSError("PortAudio not initialized")])
    events: list[DeviceEvent] = []
    sup = DeviceSupervisor(
        Direction.INPUT,
        opener,
        events.append,
        initial_backoff_s=0.01,
        settle_s=0.0,
        reinit=lambda: True,
    )
    task = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await asyncio.wait_for(sup.ready.wait(), 5)
        await wait_for(lambda: len(events) == 2, 5, "recovery")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert events == [
        AudioDeviceFailed("input", "audio input failed: PortAudio not initialized"),
        AudioDeviceRecovered("input"),
    ]


async def test_a_stream_that_dies_before_settling_is_one_outage_not_a_flap() -> None:
    """A mic that opens and stalls again at once must not bounce the app error → idle → error."""
    opener = ScriptedOpener([])
    events: list[DeviceEvent] = []
    sup = DeviceSupervisor(
        Direction.INPUT,
        opener,
        events.append,
        initial_backoff_s=0.01,
        max_backoff_s=0.02,
        poll_s=0.01,
        settle_s=0.3,
        reinit=lambda: True,
    )
    task = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await wait_for(lambda: len(opener.streams) == 1, 5, "first open")
        opener.streams[0].dead = "no audio for 3 s"
        for n in range(2, 6):  # each reopened stream dies again within the settle time
            await wait_for(lambda n=n: len(opener.streams) == n, 5, "reopen")
            opener.streams[-1].dead = "no audio for 3 s"
        assert events == [AudioDeviceFailed("input", "no audio for 3 s")]
        assert sup.failed_opens == 0  # the device opens: only its stream keeps dying
        await wait_for(lambda: len(opener.streams) == 6, 5, "a stream that stays healthy")
        await wait_for(lambda: len(events) == 2, 5, "recovery after settling")
        assert events[1] == AudioDeviceRecovered("input")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
