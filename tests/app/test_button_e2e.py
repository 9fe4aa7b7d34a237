"""The button on mock pins driving the real daemon: start, barge-in, end, hold to mute and unmute."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.app.memory import MuteStore
from device.app.states import State
from device.audio.earcons import Earcon
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.app.harness import Rig, running_daemon
from tests.app.test_conversation_e2e import DARK, LISTENING_RGB, earcon_48k
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.simhw.test_rig import best_correlation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
MUTED_RGB = (1.0, 0.0, 0.0)


def loud_frames(x: npt.NDArray[np.int16], rate: int = 48000) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame: is there sound?"""
    frame = rate // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    return np.asarray(rms > 100)


async def end_and_mute(rig: Rig, speech: SpeechFactory, simulator: LiveSimulator) -> None:
    """Press while listening ends the conversation; a hold mutes (and the wake word is off)."""
    mark = len(rig.seen)
    await asyncio.to_thread(rig.press)
    idle = await rig.wait_state(State.IDLE, 10, since=mark)
    assert idle.pins == DARK

    # Hold: mute (LED red, persisted); the wake word is not listened to.
    mark = len(rig.seen)
    await asyncio.to_thread(rig.press, 1.4)
    muted = await rig.wait_state(State.MUTED, 10, since=mark)
    assert muted.pins == MUTED_RGB
    assert MuteStore(rig.cfg.state_dir).load()
    connections = len(simulator.connections)
    rig.play(speech("Hey Jarvis, what is the capital of France?"))
    await asyncio.sleep(5)
    assert rig.state is State.MUTED
    assert len(simulator.connections) == connections


async def test_button_start_barge_in_end_and_mute(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    story = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", story)
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(update={"button": cfg.button.model_copy(update={"hold_s": 1.0})})
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            # Press when idle: a conversation starts, with the wake chime.
            mark = len(rig.seen)
            await asyncio.to_thread(rig.press)
            listening = await rig.wait_state(State.LISTENING, 20, since=mark)
            assert listening.pins == LISTENING_RGB
            rig.play(story)
            mark = len(rig.seen)
            await rig.wait_state(State.RESPONDING, 30, since=mark)
            await asyncio.sleep(1.5)  # the story is playing
            # Press during the answer: speech stops at once and the device listens.
            at_press = len(rec.snapshot())
            mark = len(rig.seen)
            await asyncio.to_thread(rig.press, 0.05)
            back = await rig.wait_state(State.LISTENING, 10, since=mark)
            assert back.pins == LISTENING_RGB
            at_flush = len(rec.snapshot())
            await asyncio.sleep(2.0)
            after = rec.snapshot()
        assert best_correlation(earcon_48k(Earcon.WAKE), after) > 0.8
        loud = loud_frames(after[at_press:])
        last_loud = int(np.flatnonzero(loud)[-1]) if loud.any() else 0
        stop_s = last_loud / 100 - (at_flush - at_press) / 48000
        print(
            f"speech stopped {stop_s * 1000:.0f} ms after the flush (sink monitor, incl. buffers)"
        )
        # The ~12 s story did not go on: the sink is silent from just after the flush on
        # (loose bound: it includes PulseAudio's buffering; the measured value is printed).
        assert loud.any() and stop_s < 0.6

        await end_and_mute(rig, speech, simulator)

    # Mute survives a restart.
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY, start=State.MUTED) as rig:
        assert rig.pins() == MUTED_RGB
        mark = len(rig.seen)
        await asyncio.to_thread(rig.press, 1.4)
        idle = await rig.wait_state(State.IDLE, 10, since=mark)
        assert idle.pins == DARK
        assert not MuteStore(cfg.state_dir).load()
        # Unmuted: the wake word works again.
        mark = len(rig.seen)
        rig.play(speech("Hey Jarvis, what is the capital of France?"))
        await rig.wait_state(State.LISTENING, 30, since=mark)
