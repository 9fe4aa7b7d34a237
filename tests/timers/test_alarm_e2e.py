"""On the rig: an alarm asked for by voice for the next minute on the wall clock rings at that
minute, with the Live API server gone by then (the device keeps the time and rings by itself).

The test's process (the daemon runs in it) gets a time zone whose offset has seconds, chosen so
that the next local minute starts LEAD_S from now: the alarm is a real local clock time, and the
test waits LEAD_S for it instead of up to a minute more."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.app.states import State
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from device.timers.model import Kind, Outcome
from tests.app.harness import running_daemon
from tests.app.test_conversation_e2e import register_tails, speech_start
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.timers.rig import RATE, RecordingClock, press, ring_span

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEAD_S = 25
"""Seconds between asking and the alarm's minute (the conversation takes ~10 s)."""


@pytest.fixture
def minute_ahead() -> Iterator[int]:
    """The wall time (whole seconds) LEAD_S from now, made the start of a local minute by a time
    zone offset of whole seconds (POSIX TZ: local = UTC + offset); the zone is restored after."""
    target = math.ceil(time.time()) + LEAD_S
    saved = os.environ.get("TZ")
    os.environ["TZ"] = f"LSX-00:00:{-target % 60:02d}"
    time.tzset()
    try:
        assert dt.datetime.fromtimestamp(target).second == 0
        yield target
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


async def test_an_alarm_for_the_next_minute_rings_then_without_the_server(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    minute_ahead: int,
) -> None:
    target = minute_ahead
    hhmm = dt.datetime.fromtimestamp(target).strftime("%H:%M")  # local time
    one_breath = speech("Hey Jarvis, set an alarm.")
    # The simulator hears it by its envelope; what it "understood" carries the minute.
    register_tails(
        simulator, f"set an alarm for {hhmm}", one_breath, speech_start(one_breath, 8000)
    )
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        rig.play(one_breath)
        await rig.wait_state(State.RESPONDING, 40)
        (alarm,) = rig.appliance.timers.pending()
        assert alarm.kind is Kind.ALARM and alarm.next_at == target
        await simulator.stop()  # the network is gone: nothing answers any more
        with sound_card.record_speaker(RATE) as rec:
            rec.wait_until_flowing()
            clock = RecordingClock(rec, time.time)
            sampler = asyncio.create_task(clock.run(), name="recording-clock")
            try:
                left = target - time.time()
                mark = len(rig.seen)
                await rig.wait_state(State.RINGING, left + 10, since=mark)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(press, rig)
                await rig.wait_state(State.IDLE, 5, since=len(rig.seen) - 1)
            finally:
                sampler.cancel()
            audio = rec.snapshot()
        (done,) = rig.appliance.timers.history()
    assert done.outcome is Outcome.RANG
    span = ring_span(audio, clock)
    assert span is not None, "no ring heard"
    print(f"alarm heard {span[0] - target:+.3f} s from {hhmm}:00 (server gone)")
    assert abs(span[0] - target) <= 0.3
