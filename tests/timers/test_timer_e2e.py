"""On the rig: "Hey Jarvis, set a timer for five seconds" spoken into the virtual microphone, the
simulator's model calls set_timer over the real SDK, the ring is heard at the speaker monitor
5 s after the timer was set, and a button press on the mock pin stops it; LEDs and STATUS follow.

Times on the recording are mapped to CLOCK_BOOTTIME, the clock the timer runs on
(tests/timers/rig.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device.app.states import State
from device.service import Notifier
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from device.timers.model import Outcome
from tests.app.harness import running_daemon
from tests.app.test_conversation_e2e import register_tails, speech_start
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.service.notify_socket import NotifySocket
from tests.timers.rig import RATE, RecordingClock, beeps, press, rgb_samples, ring_span

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ONSET_TOLERANCE_S = 0.3
"""The issue's bound on when the ring is heard: 5 s +- 0.3 s."""
STOP_BOUND_S = 0.25
"""After the press no ring may be heard: one output block (20 ms) + the output latency (40 ms
since the latency change; 100 ms when this bound was set) + the sink's monitor (measured
~20-60 ms); generous."""


async def test_spoken_five_second_timer_rings_on_time_and_a_press_stops_it(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_breath = speech("Hey Jarvis, set a timer for five seconds.")
    q_start = speech_start(one_breath, after=int(0.5 * 16000))
    register_tails(simulator, "set a timer for five seconds", one_breath, q_start)
    cfg = sim_config(simulator, tmp_path)
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg, sound_card, simulator, SIM_API_KEY, notifier=Notifier()
        ) as rig:
            with sound_card.record_speaker(RATE) as rec:
                rec.wait_until_flowing()
                clock = RecordingClock(rec)
                sampler = asyncio.create_task(clock.run(), name="recording-clock")
                try:
                    rig.play(one_breath)
                    ringing = await rig.wait_state(State.RINGING, 40)
                    await ns.until(
                        lambda m: any(x.fields.get("STATUS", "").startswith("Ringing") for x in m),
                        5,
                        "STATUS Ringing",
                    )
                    colours = await asyncio.to_thread(rgb_samples, rig, 1.2)
                    await asyncio.sleep(1.0)
                    mark = len(rig.seen)
                    pressed_at = await asyncio.to_thread(press, rig)
                    idle = await rig.wait_state(State.IDLE, 5, since=mark)
                    await asyncio.sleep(1.5)  # a whole ring cycle: nothing more may come
                finally:
                    sampler.cancel()
                audio = rec.snapshot()

    # The model called the tool over the real session and the device answered it.
    (done,) = [d for d in rig.appliance.timers.history() if d.outcome is Outcome.RANG]
    assert done.item.duration_s == 5.0
    assert ringing.status.state is State.RINGING
    assert colours <= {(0.0, 1.0, 0.0), (0.0, 0.0, 0.0)} and (0.0, 1.0, 0.0) in colours
    assert idle.pins == (0.0, 0.0, 0.0)
    # It rang into the open conversation (listening for a follow-up): that ended, the ring won.
    states = rig.states()
    assert states[states.index(State.RINGING) - 1] in (State.LISTENING, State.RESPONDING)

    span = ring_span(audio, clock)
    assert span is not None, "no ring heard at the speaker"
    onset, ring_end = span
    assert done.item.set_at.boottime is not None
    expected = done.item.set_at.boottime + 5.0
    print(
        f"ring onset {onset - expected:+.3f} s vs set + 5 s; last ring heard "
        f"{ring_end - pressed_at:+.3f} s after the press"
    )
    assert abs(onset - expected) <= ONSET_TOLERANCE_S
    assert ring_end - pressed_at <= STOP_BOUND_S
    # It went on ringing until the press: four beeps per 1 s cycle, at least two cycles.
    assert beeps(audio) >= 8


async def test_saying_stop_stops_the_ring_and_other_speech_does_not(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    """No wake word: "stop" (a voice the model was not trained on) while it rings stops it;
    a sentence said while it rings does not."""
    other = speech(
        "Could you turn it down a bit? The pasta is almost done.", voice="en-gb-scotland"
    )
    stop = speech("stop", voice="en-gb-scotland")
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        rig.appliance.tools.run("set_timer", {"seconds": 2, "label": "pasta"})
        await rig.wait_state(State.RINGING, 15)
        mark = len(rig.seen)
        await asyncio.to_thread(rig.play(other).wait, 20)
        await asyncio.sleep(1.0)
        assert rig.state is State.RINGING and len(rig.seen) == mark
        rig.play(stop)
        idle = await rig.wait_state(State.IDLE, 10, since=mark)
        assert idle.pins == (0.0, 0.0, 0.0)
        assert not rig.appliance.ringer.ringing
