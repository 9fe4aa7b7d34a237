"""Spoken end to end: real PortAudio on the virtual card, real openWakeWord, real SDK vs simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from device.app.states import State
from device.audio import earcons
from device.audio.earcons import Earcon
from device.events import MODEL_RATE
from device.live.handles import HandleStore
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.audio.rig import wait_for
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.simhw.test_rig import best_correlation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LISTENING_RGB = (0.0, 0.0, 1.0)
DARK = (0.0, 0.0, 0.0)


def speech_start(x: npt.NDArray[np.int16], after: int, rate: int = 16000) -> int:
    """Index of the first loud 20 ms frame at or after `after` that follows >= 60 ms of quiet."""
    frame = rate // 50
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    quiet_run = 0
    for i in range(after // frame, n):
        if rms[i] < 300:
            quiet_run += 1
        elif quiet_run >= 3:
            return i * frame
        else:
            quiet_run = 0
    raise AssertionError("no pause followed by speech")


def earcon_48k(kind: Earcon) -> npt.NDArray[np.int16]:
    """An earcon as the speaker sink's monitor records it (48 kHz)."""
    return np.asarray(soxr.resample(earcons.render(kind), MODEL_RATE, 48000), np.int16)


def register_tails(
    sim: LiveSimulator, text: str, x: npt.NDArray[np.int16], question_start: int
) -> None:
    """Teach the simulator the question, also with the end of the wake word still in front of it.

    The device sends from the wake word's (estimated) end, erring early: the simulator's
    envelope matcher must recognise the question with up to ~1 s of "...vis" before it.
    """
    for lead in np.arange(0.0, 1.0, 0.02):
        sim.register_utterance(text, x[max(0, question_start - int(lead * 16000)) :])


async def test_spoken_conversation_follow_up_and_resume(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    one_breath = speech("Hey Jarvis, what is the capital of France?")
    # The question part: from the pause after "Jarvis" on (the simulator matches it by envelope).
    q_start = speech_start(one_breath, after=int(0.5 * 16000))
    question = one_breath[q_start:]
    register_tails(simulator, "what is the capital of France", one_breath, q_start)
    follow_up = speech("And what is the capital of Brazil?")
    simulator.register_utterance("what is the capital of Brazil", follow_up)
    recall = speech("Hey Jarvis, what did I ask before?")
    register_tails(
        simulator, "what did I ask before", recall, speech_start(recall, int(0.5 * 16000))
    )
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(
        update={
            "conversation": cfg.conversation.model_copy(update={"follow_up_s": 3.0}),
        }
    )
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        assert rig.pins() == DARK  # idle: nothing leaves the device
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            rig.play(one_breath)
            listening = await rig.wait_state(State.LISTENING, 30)
            assert listening.pins == LISTENING_RGB
            mark = len(rig.seen)
            await rig.wait_state(State.RESPONDING, 30, since=mark)
            assert rig.pins()[0] == 0.0  # responding: cyan pulse, never red
            mark = len(rig.seen)
            back = await rig.wait_state(State.LISTENING, 30, since=mark)
            assert back.pins == LISTENING_RGB
            answer = rec.snapshot()
            # The reply came out of the speaker sink.
            assert np.sqrt(np.mean(answer.astype(np.float64) ** 2)) > 200
            # No wake chime over speech that continues right after the wake word.
            assert best_correlation(earcon_48k(Earcon.WAKE), answer) < 0.5

            # A follow-up without the wake word.
            mark = len(rig.seen)
            rig.play(follow_up)
            await rig.wait_state(State.RESPONDING, 30, since=mark)
            mark = len(rig.seen)
            await rig.wait_state(State.LISTENING, 30, since=mark)
            # Silence ends the conversation: end chime, session closed, handle saved.
            mark = len(rig.seen)
            idle = await rig.wait_state(State.IDLE, 30, since=mark)
            assert idle.pins == DARK
            await asyncio.sleep(1.5)
            assert best_correlation(earcon_48k(Earcon.END), rec.snapshot()) > 0.8
        conn = simulator.connections[0]
        sent = np.frombuffer(b"".join(conn.audio_in()), np.int16)
        # The question arrived whole: every bit of it is in what the simulator received.
        assert best_correlation(question, sent) > 0.9
        assert "capital of France" in " ".join(simulator.histories.get(conn.handles[-1], ()))

        saved = HandleStore(cfg.state_dir).load()
        assert saved is not None
        assert len(simulator.connections) == 1
        history = simulator.histories.get(saved.handle, ())
        assert any("Brazil" in h for h in history)

        # The next wake-up resumes the conversation with the saved handle.
        mark = len(rig.seen)
        rig.play(recall)
        await rig.wait_state(State.RESPONDING, 30, since=mark)
        assert len(simulator.connections) == 2
        assert simulator.connections[1].resumed_from == saved.handle


async def test_wake_word_during_the_answer_stops_it(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    story = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", story)
    cfg = sim_config(simulator, tmp_path)
    # The rig has no acoustic path from speaker to microphone, so the barge-in threshold only
    # has to accept espeak-ng's "hey jarvis" through the rig (its scores vary from 0.5 to 0.9).
    cfg = cfg.model_copy(
        update={"wakeword": cfg.wakeword.model_copy(update={"barge_in_threshold": 0.45})}
    )
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        await rig.ask_by_button(story)
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            mark = len(rig.seen)
            rig.play(speech("Hey Jarvis!"))
            back = await rig.wait_state(State.LISTENING, 20, since=mark)
            assert back.pins == LISTENING_RGB
            at_flush = len(rec.snapshot())
            await asyncio.sleep(1.5)
            after = rec.snapshot()[at_flush:]
        # The story (about 12 s) stopped: the sink is silent soon after the barge-in.
        tail = after[int(0.6 * 48000) :]
        assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) < 50


async def test_question_said_with_a_barge_in_wake_word_reaches_the_server_whole(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    """ "Hey Jarvis, what is the capital of France?" over the answer: half duplex withheld it
    while the speaker played, yet the question reaches the server whole (sent from pre-roll)."""
    story = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", story)
    one_breath = speech("Hey Jarvis, what is the capital of France?")
    q_start = speech_start(one_breath, after=int(0.5 * 16000))
    question = one_breath[q_start:]
    register_tails(simulator, "what is the capital of France", one_breath, q_start)
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(
        update={"wakeword": cfg.wakeword.model_copy(update={"barge_in_threshold": 0.45})}
    )
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        await rig.ask_by_button(story)
        sent_before = len(b"".join(simulator.connections[0].audio_in())) // 2
        mark = len(rig.seen)
        rig.play(one_breath)
        await rig.wait_state(State.LISTENING, 20, since=mark)
        mark = len(rig.seen)
        await rig.wait_state(State.RESPONDING, 30, since=mark)
        await rig.wait_state(State.LISTENING, 30, since=mark)  # the answer played out
    sent = np.frombuffer(b"".join(simulator.connections[0].audio_in()), np.int16)[sent_before:]
    assert best_correlation(question, sent) > 0.9
    history = " ".join(simulator.histories.get(simulator.connections[0].handles[-1], ()))
    assert "capital of France" in history


async def wake_then_ask_after_the_chime(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    *,
    chime_heard: float,
    lead_s: float,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """ "Hey Jarvis." alone; once the wake chime correlates `chime_heard` in the speaker's
    recording, the question, `lead_s` of silence later. Returns the question, what the speaker
    played and what was sent; the question was registered as "what is the capital of France"."""
    question = speech("What is the capital of France?")
    simulator.register_utterance("what is the capital of France", question)
    chime = earcon_48k(Earcon.WAKE)
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            rig.play(speech("Hey Jarvis."))
            await rig.wait_state(State.LISTENING, 30)
            mark = len(rig.seen)
            # The user waits for the chime, then asks (however late a loaded machine chimes).
            await wait_for(
                lambda: best_correlation(chime, rec.snapshot()[-48000:]) > chime_heard,
                10,
                "the wake chime",
            )
            rig.play(question, lead_s=lead_s)
            await rig.wait_state(State.RESPONDING, 30, since=mark)
            mark = len(rig.seen)
            await rig.wait_state(State.LISTENING, 30, since=mark)
            heard = rec.snapshot()
    conn = simulator.connections[0]
    return question, heard, np.frombuffer(b"".join(conn.audio_in()), np.int16)


def understood(simulator: LiveSimulator) -> tuple[str, ...]:
    """What the simulator took the first connection's turns for."""
    conn = simulator.connections[0]
    return simulator.histories[conn.handles[-1]]


async def test_wake_word_then_a_pause_gets_the_chime_and_the_question_after_it(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    question, heard, sent = await wake_then_ask_after_the_chime(
        sound_card, simulator, speech, tmp_path, chime_heard=0.8, lead_s=0.7
    )
    # The user paused: the wake chime told them to go on ...
    assert best_correlation(earcon_48k(Earcon.WAKE), heard) > 0.8
    # ... and the question after it arrived whole and was understood.
    assert best_correlation(question, sent) > 0.9
    assert understood(simulator) == ("what is the capital of France",)


def head_heard(ref: npt.NDArray[np.int16], sent: npt.NDArray[np.int16], head_s: float) -> float:
    """Correlation of the first `head_s` of `ref` with where the whole of it lies in `sent`."""
    a, b = ref.astype(np.float64), sent.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: len(b) - len(a) + 1]
    lag = int(np.argmax(xc))
    k = int(head_s * 16000)
    head, seg = a[:k], b[lag : lag + k]
    return float(np.dot(head, seg) / (np.linalg.norm(head) * np.linalg.norm(seg) + 1e-9))


async def test_a_question_asked_as_soon_as_the_chime_ends_arrives_whole(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
) -> None:
    """Half duplex: the user answers the wake chime at once (~0.17 s after it ends). The gate
    waits out the chime's echo (150 ms), not the 300 ms meant for an answer's, which cut the
    start of such a question off ("...is the capital of France")."""
    question, _, sent = await wake_then_ask_after_the_chime(
        sound_card, simulator, speech, tmp_path, chime_heard=0.97, lead_s=0.15
    )
    assert head_heard(question, sent, 0.2) > 0.9
    assert understood(simulator) == ("what is the capital of France",)
