"""echo_mode = "aec" on the whole daemon: the speaker's answer comes back into the microphone
through a room, the upload stays open while it plays, and the simulator's voice activity
detection decides barge-in (as the Live API's does).

The simulator holds its turn while its answer plays (as the service treats an answer being
heard), so a voice it hears meanwhile interrupts it. Without the canceller the room's echo
alone would (tests/audio/test_aec.py shows the echo is heard as speech)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.app.states import State
from device.config import EchoMode
from device.simhw.pulse import SpeakerRecording, VirtualSoundCard
from device.simhw.room import EchoRoom
from device.simulator.certs import CertFiles
from device.simulator.server import ConnectionRecord, LiveSimulator
from tests.app.harness import Rig, running_daemon
from tests.app.test_button_e2e import loud_frames
from tests.app.test_conversation_e2e import LISTENING_RGB
from tests.audio.rig import wait_for
from tests.conftest import SIM_API_KEY, SpeechFactory, running_simulator, sim_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

BARGE_INS = 2 if os.environ.get("CI") else 20
"""Trials of "wait, stop" over an answer (the issue's bar: 19 of 20; CI runs 2)."""
HELD_AT_MOST = 10
"""Answers (3-6 s each) after a start over which the upload may stay held: the canceller is
trusted after LEARN_AT_MOST (30 s) of the speaker's sound at the latest."""


@pytest.fixture
async def holding_simulator(tls_certs: CertFiles) -> AsyncIterator[LiveSimulator]:
    """A simulator that sends its answers 4x faster than real time and holds its turn until
    they have been heard."""
    async with running_simulator(tls_certs, realtime_factor=4.0, hold_turn_complete=True) as sim:
        yield sim


def interruptions(rec: ConnectionRecord) -> int:
    return rec.sent.count("serverContent.interrupted")


async def story_without_interruption(
    rig: Rig, sim: LiveSimulator, story: npt.NDArray[np.int16], seconds: float
) -> tuple[float, float, float]:
    """Ask for the story (the conversation is listening) and let it play `seconds` with nobody
    talking; returns the LED pins when it started, and asserts the simulator never heard a voice."""
    mark = len(rig.seen)
    rig.play(story)
    responding = await rig.wait_state(State.RESPONDING, 30, since=mark)
    before = interruptions(sim.connections[-1])
    await asyncio.sleep(seconds)
    assert rig.state is State.RESPONDING, rig.states()
    assert interruptions(sim.connections[-1]) == before, "the answer's echo interrupted it"
    return responding.pins


async def barge_in(
    rig: Rig, sim: LiveSimulator, rec: SpeakerRecording, wait_stop: npt.NDArray[np.int16]
) -> float | None:
    """Say "wait, stop" over the answer; returns the seconds from the simulator's interruption
    being seen by the test to silence at the speaker's sink (negative: silent before the test
    saw it), or None when the simulator was not interrupted."""
    conn = sim.connections[-1]
    before = interruptions(conn)
    mark = len(rig.seen)
    rig.play(wait_stop)
    try:
        await wait_for(lambda: interruptions(conn) > before, 10, "interrupted", poll_s=0.005)
    except AssertionError:
        return None
    at_interrupt = rec.recorded()  # the recorder runs ~10 ms behind the sink
    back = await rig.wait_state(State.LISTENING, 10, since=mark)
    await asyncio.sleep(1.0)
    recorded = rec.snapshot()[: at_interrupt + rec.rate]
    loud = loud_frames(recorded)
    assert loud.any() and back.status.state is State.LISTENING
    last_loud = (int(np.flatnonzero(loud)[-1]) + 1) * rec.rate // 100
    return (last_loud - at_interrupt) / rec.rate  # < 0: silent before the test saw it


async def test_aec_keeps_the_upload_open_over_the_answer_and_a_voice_stops_it(
    room_card: VirtualSoundCard,
    holding_simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    sim = holding_simulator
    story = speech("Please tell me a story.")
    wait_stop = speech("wait, stop. what is the time in tokyo?")
    sim.register_utterance("tell me a story", story)
    cfg = sim_config(sim, tmp_path)
    cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"echo_mode": EchoMode.AEC})})
    stops: list[float | None] = []
    with EchoRoom(room_card, delay_ms=40, attenuation_db=10, rt60_s=0.2):
        async with running_daemon(cfg, room_card, sim, SIM_API_KEY) as rig:
            with room_card.record_speaker(48000) as rec:
                rec.wait_until_flowing()
                mark = len(rig.seen)
                await asyncio.to_thread(rig.press)
                await rig.wait_state(State.LISTENING, 20, since=mark)
                # The first answers after a start: the canceller is learning the room (and
                # its echo lock waits for the echo to hold steady), so the upload is held (half
                # duplex) and the LEDs do not show listening; the button stops each.
                pins = await story_without_interruption(rig, sim, story, 6.0)
                assert pins != LISTENING_RGB
                held = 1
                while pins != LISTENING_RGB:
                    assert held <= HELD_AT_MOST, f"still half duplex after {held} answers"
                    mark = len(rig.seen)
                    await asyncio.to_thread(rig.press, 0.05)  # barge in by button
                    await rig.wait_state(State.LISTENING, 10, since=mark)
                    pins = await story_without_interruption(rig, sim, story, 3.0)
                    held += pins != LISTENING_RGB
                for trial in range(BARGE_INS):
                    # Trusted: the upload is open while the answer plays (LEDs: listening),
                    # and the answer's echo does not interrupt it ...
                    if trial:
                        pins = await story_without_interruption(rig, sim, story, 3.0)
                        assert pins == LISTENING_RGB
                    # ... but a voice over it does, and the speaker falls silent.
                    stops.append(await barge_in(rig, sim, rec, wait_stop))
                    # The simulator answers what it heard; the conversation listens again.
                    await rig.wait_state(State.RESPONDING, 30, since=len(rig.seen) - 1)
                    await rig.wait_state(State.LISTENING, 30, since=len(rig.seen) - 1)
    heard = [s for s in stops if s is not None]
    print(
        f"aec: the upload held over {held} answers after the start; "
        f"barge-in: {len(heard)}/{len(stops)} interrupted; interrupted -> silent at the "
        f"sink in {', '.join(f'{s * 1000:.0f}' for s in heard)} ms"
    )
    assert len(heard) >= len(stops) - (len(stops) // 20)
    assert all(s < 0.3 for s in heard)
