"""The "stop" keyword model on the held-out voices: recall, and false stops in ordinary speech.

Data: tests/timers/stop_word_data.py (synthesized, cached on disk like the wake-word corpus).
The shipped model is scored as the detector runs it (every 80 ms window, 2 s refractory).
"""

from __future__ import annotations

import pytest

from device.timers.stopword import THRESHOLD, StopWord
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
