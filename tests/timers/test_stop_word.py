"""The "stop" keyword model on the held-out voices: recall, and false stops in ordinary speech.

Data: tests/timers/stop_word_data.py (synthesized, cached on disk like the wake-word corpus).
The shipped model is scored as the detector runs it (every 80 ms window, 2 s refractory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.config import WakewordConfig
from device.events import AudioBlock, StopWordHeard
from device.timers.stopword import THRESHOLD, StopWord
from device.wakeword.detector import build_detector
from tests.conftest import SpeechFactory
from tests.timers.stop_word_data import (
    detections,
    per_word_best,
    ring_alone,
    stops,
    windows,
    with_ring,
)
from tests.wakeword import corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

MINUTES = 10.0


def test_held_out_recall_and_false_stops_in_ten_minutes_of_speech() -> None:
    model = StopWord.load()
    report: dict[str, float] = {}
    held = stops(corpus.HELD_OUT_VOICES)
    for name, stream in (("clean", held), ("over the ring", with_ring(held))):
        best = per_word_best(stream, model.scores(windows(stream)))
        report[f"recall {name}"] = float((best >= THRESHOLD).mean())
    speech = corpus.ordinary_speech(corpus.HELD_OUT_VOICES, MINUTES, seed=12)
    minutes = speech.hours * 60
    for name, s in (
        ("speech", speech),
        ("speech over the ring", with_ring(speech)),
        ("ring alone", ring_alone(2.0)),
    ):
        report[f"false stops, {name}"] = detections(model.scores(windows(s)), THRESHOLD)
    print(f"stop word, held-out voices ({minutes:.1f} min of speech): {report}")
    assert report["false stops, speech"] == 0
    assert report["false stops, ring alone"] == 0
    assert report["false stops, speech over the ring"] <= 1
    assert report["recall clean"] >= 0.9
    assert report["recall over the ring"] >= 0.8


def test_the_detector_hears_stop_only_while_listening_for_it(speech: SpeechFactory) -> None:
    """The daemon's detector path (framing, features, model) on a held-out espeak voice."""
    cfg = WakewordConfig()
    audio = np.concatenate([np.zeros(16000, np.int16), speech("stop", voice="en-gb-scotland")])
    audio = np.concatenate([audio, np.zeros(16000, np.int16)])

    def run(listening: bool) -> list[StopWordHeard]:
        det = build_detector(cfg, Path("/nonexistent"))
        det.set_stop_word(listening)
        for i in range(0, len(audio) - 320, 320):
            det.process(AudioBlock(audio[i : i + 320].tobytes(), i))
        return det.stops

    heard = run(True)
    assert len(heard) == 1 and heard[0].score >= THRESHOLD
    assert 16000 < heard[0].end < len(audio)
    assert run(False) == []
