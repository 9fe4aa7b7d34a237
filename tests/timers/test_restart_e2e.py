"""Timers across daemon restarts, on the rig (real daemon, real audio, mock pins): one set before a
restart rings on time after it; ones that ran out while the daemon was down ring at start within
the grace, and are reported as missed beyond it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device import bootclock
from device.app.states import State
from device.bootclock import Instant
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from device.timers.book import TimerBook
from device.timers.model import Outcome
from tests.app.harness import running_daemon
from tests.conftest import SIM_API_KEY, sim_config
from tests.timers.rig import RATE, RecordingClock, press, ring_span

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_timer_set_before_a_restart_rings_on_time_after_it(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, tmp_path: Path
) -> None:
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        result = rig.appliance.tools.run("set_timer", {"seconds": 15, "label": "tea"})
        assert result["set"]["name"] == "tea timer"
    # The daemon is gone; a new one starts from state_dir alone.
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        (item,) = rig.appliance.timers.pending()
        assert item.label == "tea" and item.set_at.boottime is not None
        with sound_card.record_speaker(RATE) as rec:
            rec.wait_until_flowing()
            clock = RecordingClock(rec)
            sampler = asyncio.create_task(clock.run(), name="recording-clock")
            try:
                mark = len(rig.seen)
                await rig.wait_state(State.RINGING, 20, since=mark)
                await asyncio.sleep(1.0)
                mark = len(rig.seen)
                await asyncio.to_thread(press, rig)
                await rig.wait_state(State.IDLE, 5, since=mark)
            finally:
                sampler.cancel()
            audio = rec.snapshot()
    span = ring_span(audio, clock)
    assert span is not None, "no ring heard"
    error = span[0] - (item.set_at.boottime + 15.0)
    print(f"ring onset after a restart: {error:+.3f} s vs set + 15 s")
    assert abs(error) <= 0.3


async def test_ran_out_while_down_rings_at_start_within_grace_else_missed(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, tmp_path: Path
) -> None:
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(update={"timers": cfg.timers.model_copy(update={"grace_s": 120.0})})
    real = bootclock.now()
    assert real.boottime is not None
    at = [Instant(real.wall - 100, real.boot_id, real.boottime - 100)]  # the daemon went down
    book = TimerBook(cfg.state_dir, clock=lambda: at[0])
    recent = book.add_timer(40, "pasta")  # ran out 60 s ago: within the grace
    later = book.add_timer(3600, "stew")  # still running
    # Set before this boot (the Pi was off): at least the whole uptime has passed since.
    at[0] = Instant(real.wall - real.boottime - 600, "an-earlier-boot", 3000.0)
    old = book.add_timer(60, "bread")
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        with sound_card.record_speaker(RATE) as rec:
            rec.wait_until_flowing()
            clock = RecordingClock(rec)
            sampler = asyncio.create_task(clock.run(), name="recording-clock")
            try:
                ringing = await rig.wait_state(State.RINGING, 10)
                idle = next(s for s in rig.seen if s.status.state is State.IDLE)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(press, rig)
                await rig.wait_state(State.IDLE, 5, since=rig.seen.index(ringing) + 1)
            finally:
                sampler.cancel()
            audio = rec.snapshot()
        outcomes = {d.item.id: d.outcome for d in rig.appliance.timers.history()}
        pending = [i.id for i in rig.appliance.timers.pending()]
    print(f"rang {ringing.at - idle.at:.2f} s after the daemon was up")
    assert ringing.at - idle.at < 3.0  # at start
    assert outcomes == {recent.id: Outcome.RANG, old.id: Outcome.MISSED}
    assert pending == [later.id]
    assert ring_span(audio, clock) is not None
