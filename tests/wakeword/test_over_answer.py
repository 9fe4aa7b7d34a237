"""The wake word said over an answer in aec mode: while the speaker plays, the detector listens on
the cancelled signal and on the microphone as captured, and either one wakes it (real WebRTC AEC3,
real openWakeWord, espeak-ng speech, a simulated room; no sound card).

The canceller's suppressor thins the user's voice while the answer's echo is loud; the echo masks
it in the captured signal. On the rig (bench_aec, 20 takes, three runs) the cancelled signal
alone found 13, 10 and 12, the captured one alone 10, 11 and 9, either 17, 15 and 18; half duplex
15, 14 and 14."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from device.audio.aec import FRAME, EchoCanceller, EchoReference
from device.config import WakewordConfig
from device.events import MIC_RATE, MODEL_RATE, AudioBlock
from device.simhw.room import room_response
from device.wakeword.detector import Detector, build_detector
from tests.audio.test_aec import ANSWER
from tests.conftest import SpeechFactory

pytestmark = pytest.mark.integration  # real AEC3 and openWakeWord

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m3", "en-us+f4")
STEP = 2 * FRAME
"""20 ms blocks, as the microphone hands them over."""
QUIET_S = 1.0
"""Silence before the answer starts (the speaker quiet: one lane)."""
SAID_AT_S = 2.7
"""Where the user starts speaking, from the answer's start."""

Int16 = npt.NDArray[np.int16]


def cancelled_takes(speech: SpeechFactory) -> list[list[AudioBlock]]:
    """For each voice, "hey jarvis, stop" said over an answer in a 60 ms room, 10 dB down with
    reverberation: the microphone's blocks after a canceller that learned the room on one
    answer before (each block carries what was captured, as the microphone hands it over)."""
    answer = speech(ANSWER, MODEL_RATE)[: MODEL_RATE * 6].astype(np.float32) / 32768
    played = np.concatenate(
        [np.zeros(int(QUIET_S * MIC_RATE), np.float32), soxr.resample(answer, MODEL_RATE, MIC_RATE)]
    )
    played = np.concatenate([played, np.zeros(MIC_RATE, np.float32)])
    h = room_response(0.06, 10, 0.2, np.random.default_rng(0))
    echo = np.convolve(played * 32767, h)[: len(played)]
    takes = []
    for i, voice in enumerate(VOICES):
        said = speech("hey jarvis, stop", MIC_RATE, voice=voice, speed=150 + 10 * (i % 3))
        at = int((QUIET_S + SAID_AT_S) * MIC_RATE)
        user = np.zeros(len(played))
        user[at : at + len(said)] = said[: len(played) - at]
        reference, t0 = EchoReference(), 1000.0
        canceller = EchoCanceller(reference)
        blocks = []
        for heard in (echo, echo + user):  # the room learned, then the take
            mic = np.clip(heard, -32768, 32767).astype(np.int16)
            blocks.clear()
            for j in range(0, len(mic) - STEP + 1, STEP):
                reference.put(t0 + j / MIC_RATE, played[j : j + STEP], MIC_RATE)
                block = AudioBlock(mic[j : j + STEP].tobytes(), j)
                blocks.append(canceller.process(block, t0 + j / MIC_RATE))
            t0 += 60.0
        takes.append(blocks)
    return takes


def wakes(blocks: list[AudioBlock]) -> int:
    """Wake words the daemon's detector reports, the speaker playing from QUIET_S on."""
    detector = Detector(WakewordConfig())
    found = 0
    for b in blocks:
        detector.set_barge_in(b.start >= QUIET_S * MIC_RATE)
        found += len(detector.process(b))
    return found


def test_over_an_answer_the_captured_signal_wakes_it_too(speech: SpeechFactory) -> None:
    takes = cancelled_takes(speech)
    assert all(b.uncancelled is not None for take in takes for b in take)
    aec = [wakes(take) for take in takes]
    half_duplex = [
        wakes([AudioBlock(b.uncancelled or b"", b.start) for b in take]) for take in takes
    ]
    cancelled_only = [wakes([AudioBlock(b.pcm, b.start) for b in take]) for take in takes]
    assert max(aec) == 1, aec  # one wake-up per take, whichever lane heard it
    assert sum(aec) >= sum(half_duplex), (aec, half_duplex)
    assert sum(aec) >= sum(cancelled_only), (aec, cancelled_only)
    assert sum(aec) > sum(cancelled_only), "the captured signal found nothing more"


def test_the_captured_signal_is_scored_only_while_the_speaker_plays(speech: SpeechFactory) -> None:
    said = speech("hey jarvis", MIC_RATE)
    silence = np.zeros(MIC_RATE, np.int16)
    captured = np.concatenate([silence, said, silence])
    quiet = np.zeros_like(captured)  # the cancelled signal lost it

    def blocks(pcm: Int16, raw: Int16) -> list[AudioBlock]:
        return [
            AudioBlock(pcm[i : i + STEP].tobytes(), i, raw[i : i + STEP].tobytes())
            for i in range(0, len(pcm) - STEP + 1, STEP)
        ]

    for playing, expected in ((False, 0), (True, 1)):
        detector = Detector(WakewordConfig())
        detector.set_barge_in(playing)
        found = sum(len(detector.process(b)) for b in blocks(quiet, captured))
        assert found == expected
        assert (detector.uncancelled_frames > 0) is playing
    detector = Detector(WakewordConfig())
    detector.set_barge_in(True)
    assert sum(len(detector.process(b)) for b in blocks(captured, captured)) == 1  # not twice


def test_stop_over_a_ring_is_heard_on_the_captured_signal_too(speech: SpeechFactory) -> None:
    said = speech("stop", voice="en-gb-scotland")
    silence = np.zeros(MIC_RATE, np.int16)
    captured = np.concatenate([silence, said, silence])
    blocks = [
        AudioBlock(b"\0" * 2 * STEP, i, captured[i : i + STEP].tobytes())
        for i in range(0, len(captured) - STEP + 1, STEP)
    ]
    detector = build_detector(WakewordConfig(), Path("/nonexistent"))
    detector.set_stop_word(True)
    detector.set_barge_in(True)  # a ring plays
    for b in blocks:
        detector.process(b)
    assert len(detector.stops) == 1
