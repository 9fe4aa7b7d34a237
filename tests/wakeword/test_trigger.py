"""FrameTrigger: threshold, frames above threshold, refractory time, barge-in threshold, end estimate,
enrolled voices."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import WakewordConfig
from device.events import WakeDetected
from device.wakeword import verifier
from device.wakeword.detector import NOISY_END_LEAD_S, FrameTrigger

pytestmark = pytest.mark.unit
F = 1280


def feed(t: FrameTrigger, scores: list[float], start_frame: int = 1) -> list[WakeDetected]:
    out = []
    for i, s in enumerate(scores):
        hit = t.update(s, (start_frame + i) * F)
        if hit:
            out.append(hit)
    return out


def test_single_frame_trigger_reports_peak_and_end_before_crossing() -> None:
    t = FrameTrigger(WakewordConfig(), "hey_jarvis", end_lead_s=0.1)
    hits = feed(t, [0.1, 0.2, 0.7, 0.9, 0.3])
    assert len(hits) == 1
    assert hits[0].model == "hey_jarvis"
    assert hits[0].score == pytest.approx(0.7)
    assert hits[0].end == 3 * F - 1600


def test_trigger_frames_needs_consecutive_frames() -> None:
    t = FrameTrigger(WakewordConfig(trigger_frames=3), "m", end_lead_s=0)
    assert feed(t, [0.9, 0.9, 0.1, 0.9, 0.9]) == []
    hits = feed(t, [0.8], start_frame=6)
    assert len(hits) == 1
    assert hits[0].end == 4 * F  # the run started at frame 4
    assert hits[0].score == pytest.approx(0.9)


def test_refractory_blocks_repeat_detections() -> None:
    t = FrameTrigger(WakewordConfig(refractory_s=1.0), "m", end_lead_s=0)
    hits = feed(t, [0.9] * 30)  # 2.4 s above threshold
    # frame 1, then the first frame ending >= 1 s later (frame 14), then frame 27
    assert [h.end for h in hits] == [1 * F, 14 * F, 27 * F]


def test_barge_in_uses_the_higher_threshold() -> None:
    t = FrameTrigger(WakewordConfig(threshold=0.5, barge_in_threshold=0.8), "m")
    t.barge_in = True
    assert feed(t, [0.7, 0.75, 0.6]) == []
    assert len(feed(t, [0.85], start_frame=10)) == 1
    t.barge_in = False
    assert t.threshold == 0.5


def test_threshold_slides_with_background_noise() -> None:
    t = FrameTrigger(
        WakewordConfig(threshold=0.5, noisy_threshold=0.1, noisy_trigger_frames=1), "m"
    )
    assert t.threshold_at(None) == 0.5  # noise suppression off
    assert t.threshold_at(4.0) == 0.5  # digital silence / quiet room
    assert t.threshold_at(9.0) == pytest.approx(0.1)  # loud steady noise
    mid = t.threshold_at(6.75)
    assert 0.1 < mid < 0.5
    assert feed_noisy(t, 0.3, 9.0) and not feed_noisy(FrameTrigger(WakewordConfig(), "m"), 0.3, 4.0)
    t.barge_in = True
    assert t.threshold_at(9.0) == WakewordConfig().barge_in_threshold


def feed_noisy(t: FrameTrigger, score: float, level: float) -> bool:
    return t.update(score, 10 * F, level) is not None


def test_noise_needs_more_frames_above_the_lower_threshold() -> None:
    t = FrameTrigger(
        WakewordConfig(noisy_threshold=0.02, noisy_trigger_frames=2), "m", end_lead_s=0
    )
    assert t.frames_needed(None) == 1 and t.frames_needed(4.0) == 1
    assert t.frames_needed(9.0) == 2
    assert t.update(0.05, 10 * F, 9.0) is None  # one frame in loud noise: not yet
    assert t.update(0.01, 11 * F, 9.0) is None  # run broken
    assert t.update(0.05, 12 * F, 9.0) is None
    hit = t.update(0.04, 13 * F, 9.0)
    assert hit is not None and hit.end == 12 * F - int(NOISY_END_LEAD_S * 16000)
    assert t.update(0.6, 100 * F, 4.0) is not None  # quiet: one frame at the quiet threshold
    t.barge_in = True
    assert t.frames_needed(9.0) == 1


def _window_at(template: np.ndarray, similarity: float, rng: np.random.Generator) -> np.ndarray:
    """A window of embeddings whose every row has cosine `similarity` with the template's."""
    other = rng.standard_normal(template.shape)
    other -= np.sum(other * template, axis=1, keepdims=True) * template  # orthogonal rows
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    return (similarity * template + np.sqrt(1 - similarity**2) * other).astype(np.float32)


@pytest.mark.parametrize(
    ("score", "similarity", "accepted"),
    [
        (verifier.GATE, verifier.MATCH + 0.01, True),
        (verifier.GATE / 2, verifier.MATCH + 0.01, False),  # a faint frame needs more
        (verifier.GATE / 2, verifier.FAINT_MATCH + 0.01, True),
        (verifier.FAINT_GATE, verifier.FAINT_MATCH + 0.01, True),
        (verifier.FAINT_GATE / 2, 0.999, False),  # the base model heard nothing like it
    ],
)
def test_an_enrolled_voice_needs_a_closer_match_where_the_base_model_scored_faintly(
    score: float, similarity: float, accepted: bool
) -> None:
    rng = np.random.default_rng(1)
    template = verifier.unit_rows(rng.standard_normal((verifier.WINDOW, 96)).astype(np.float32))
    voice = verifier.VoiceVerifier("anna", template[None])
    window = _window_at(template, similarity, rng)
    assert voice.similarity(window) == pytest.approx(similarity, abs=1e-4)
    t = FrameTrigger(WakewordConfig(), "hey_jarvis", [voice], end_lead_s=0)
    assert t.needs_embeddings(score) is (score >= verifier.FAINT_GATE)
    hit = t.update(score, F, None, window)
    assert (hit is not None) is accepted
    if hit is not None:
        assert hit.voice == "anna"
