"""On the rig: "Hey Jarvis, set a timer for five seconds" spoken into the virtual microphone, the
simulator's model calls set_timer over the real SDK, the ring is heard at the speaker monitor
5 s after the timer was set, and a button press on the mock pin stops it; LEDs and STATUS follow.

Times on the recording are mapped to CLOCK_BOOTTIME, the clock the timer runs on
(tests/timers/rig.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from device.app.states import State
from device.service import Notifier
from device.simhw.pulse import VirtualSoundCard
from device.simulator.audio import OUT_RATE, speak
from device.simulator.brain import LONG_ANSWER
from device.simulator.server import LiveSimulator
from device.timers.model import Outcome
from tests.app.harness import running_daemon
from tests.app.test_conversation_e2e import register_tails, speech_start
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.service.notify_socket import NotifySocket
from tests.simhw.test_rig import best_correlation
from tests.timers.rig import (
    HOP,
    RATE,
    WINDOW,
    RecordingClock,
    beeps,
    press,
    rgb_samples,
    ring_frames,
    ring_span,
)

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
    # (Had the confirmation still been playing, it would have paused under the ring, ended,
    # and left the plain ring.)
    states = rig.states()
    assert states[states.index(State.RINGING) - 1] in (State.LISTENING, State.RINGING_OVER_ANSWER)

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


def speech_frames(x: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    """Per 20 ms window at RATE: whether it holds speech, i.e. energy below 1.5 kHz (the ring is
    at 2 kHz) above 5 % of the recording's own loud speech (played at any volume)."""
    n = len(x) // WINDOW
    frames = x[: n * WINDOW].astype(np.float64).reshape(n, WINDOW) * np.hanning(WINDOW)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    low = np.sqrt(spectrum[:, : 1500 * WINDOW // RATE].sum(axis=1))
    return np.asarray(low > 0.05 * np.percentile(low, 95), bool)


async def test_a_ring_during_an_answer_pauses_it_and_the_answer_goes_on_after_the_press(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    """A timer runs out while a long answer plays: the answer stops where it is (no speech
    under or between the ring's beeps), the conversation stays open, and after a press the
    answer goes on from there to its end; then the speaker listens for a follow-up."""
    question = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", question)
    answer = soxr.resample(np.frombuffer(speak(LONG_ANSWER), np.int16), OUT_RATE, RATE)
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        with sound_card.record_speaker(RATE) as rec:
            rec.wait_until_flowing()
            await rig.ask_by_button(question)
            mark = len(rig.seen)
            await asyncio.sleep(1.5)  # a little of the story is heard
            rig.appliance.tools.run("set_timer", {"seconds": 1, "label": "tea"})
            await rig.wait_state(State.RINGING_OVER_ANSWER, 10, since=mark)
            await asyncio.sleep(2.5)
            pressed = len(rig.seen)
            await asyncio.to_thread(press, rig)
            await rig.wait_state(State.RESPONDING, 5, since=pressed)
            await rig.wait_state(State.LISTENING, 60, since=pressed)  # the rest has played
            await asyncio.sleep(0.3)
            audio = rec.snapshot()
    assert len(simulator.connections) == 1  # one conversation throughout
    states = rig.states()
    paused = states.index(State.RINGING_OVER_ANSWER)
    assert states[paused - 1 : paused + 3] == [
        State.RESPONDING,
        State.RINGING_OVER_ANSWER,
        State.RESPONDING,
        State.LISTENING,
    ]

    tone = ring_frames(audio)  # 5 ms hops
    first, last = int(np.argmax(tone)), len(tone) - 1 - int(np.argmax(tone[::-1]))
    assert tone.any() and beeps(audio) >= 8  # two cycles or more before the press
    spoken = speech_frames(audio)
    ring_from, ring_to = (first * HOP) // WINDOW, (last * HOP + WINDOW) // WINDOW
    assert not spoken[ring_from + 2 : ring_to - 1].any(), "speech under the ring"
    assert spoken[:ring_from].any() and spoken[ring_to:].any()
    # The story as heard (around the ring) is as long as the story itself: nothing of it was
    # dropped for the ring, nor played twice.
    expected = int(speech_frames(answer).sum())
    heard = int(spoken.sum())
    print(
        f"story: {heard} speech frames heard of {expected}; ring {(last - first) * HOP / RATE:.1f} s"
    )
    assert abs(heard - expected) <= 0.1 * expected
    # ... and it went on to its very end.
    tail = answer[-2 * RATE :]
    assert best_correlation(tail, audio[ring_to * WINDOW :]) > 0.8
