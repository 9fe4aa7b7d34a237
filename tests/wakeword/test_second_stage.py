"""The hey_jarvis second stage: the shipped file, which models get it, how the FrameTrigger uses it, and
real synthesized speech through the Detector (the accuracy it buys is in test_accuracy.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.config import WakewordConfig
from device.events import MIC_RATE
from device.wakeword.detector import Detector, FrameTrigger
from device.wakeword.models import ModelSpec, models_dir, resolve_model
from device.wakeword.second_stage import EMBEDDING, MODELS, WINDOW, SecondStage, second_stage_for
from tests.wakeword import corpus, evaluate


@pytest.mark.unit
def test_the_shipped_second_stage_loads_for_the_built_in_hey_jarvis_only(tmp_path: Path) -> None:
    stage = second_stage_for(resolve_model("hey_jarvis"))
    assert stage is not None
    assert stage.w1.shape == (WINDOW * EMBEDDING + 1, stage.b1.shape[0])
    assert 0 < stage.gate < 0.5 and stage.accept > 0
    off = WakewordConfig(second_stage=False)
    assert second_stage_for(resolve_model("hey_jarvis"), off) is None
    # Trained on the plain features: not used on the noise suppressor's.
    denoised = WakewordConfig(noise_suppression=True)
    assert second_stage_for(resolve_model("hey_jarvis"), denoised) is None
    assert second_stage_for(resolve_model("alexa")) is None
    # A custom model that happens to be called hey_jarvis is not the one it was trained for.
    custom = tmp_path / "hey_jarvis.tflite"
    custom.write_bytes((models_dir() / "hey_jarvis.tflite").read_bytes())
    assert second_stage_for(ModelSpec("hey_jarvis", custom)) is None


@pytest.mark.unit
def test_a_file_that_is_not_a_second_stage_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match=r"x\.npz: not a wake-word second stage"):
        SecondStage.load(bad)
    stage = SecondStage.load(MODELS["hey_jarvis"])
    stage.save(tmp_path / "copy.npz")
    again = SecondStage.load(tmp_path / "copy.npz")
    x = np.random.default_rng(0).standard_normal((4, WINDOW * EMBEDDING + 1)).astype(np.float32)
    assert np.allclose(stage.logits(x), again.logits(x))


def _stage(logit: float, gate: float = 0.01) -> SecondStage:
    """A second stage whose logit is the same for every frame."""
    n = WINDOW * EMBEDDING + 1
    f = np.float32
    return SecondStage(
        np.zeros(n, f), np.ones(n, f), np.zeros((n, 1), f), np.zeros(1, f), np.zeros(1, f),
        logit, gate, accept=5.0,
    )  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize(
    ("score", "logit", "fires"),
    [
        (0.005, 9.0, False),  # below the gate: never looked at
        (0.02, 9.0, True),  # the base model misses it, the second stage accepts it
        (0.02, 0.0, False),  # neither accepts it
        (0.9, 0.0, True),  # the base model accepts it
        (0.9, -30.0, True),  # the second stage never vetoes what the base model accepts
    ],
)
def test_the_trigger_asks_the_second_stage(score: float, logit: float, fires: bool) -> None:
    trigger = FrameTrigger(WakewordConfig(), "hey_jarvis", second_stage=_stage(logit))
    window = np.zeros((32, EMBEDDING), np.float32)
    assert trigger.needs_embeddings(score) is (score >= 0.01)
    hit = trigger.update(score, 1280, None, window if trigger.needs_embeddings(score) else None)
    assert (hit is not None) is fires
    # The journal and `wakeword test` say when it was the second stage that accepted it.
    assert hit is None or hit.second_stage is (score < 0.5)


@pytest.mark.unit
def test_barge_in_keeps_its_own_higher_threshold() -> None:
    trigger = FrameTrigger(WakewordConfig(), "hey_jarvis", second_stage=_stage(9.0))
    trigger.barge_in = True
    window = np.zeros((32, EMBEDDING), np.float32)
    assert trigger.update(0.3, 1280, None, window) is None
    assert trigger.update(0.85, 2560, None, window) is not None


@pytest.mark.integration
def test_in_babble_the_detector_finds_wake_words_the_base_model_misses() -> None:
    """Held-out voices saying the wake word in 10 dB babble, through the Detector as the daemon
    runs it: with the second stage it finds more of them than without, and nothing in ordinary
    speech by the same voices."""
    voices = corpus.HELD_OUT_VOICES[::3]
    pos = corpus.apply(corpus.positives(voices, 3), "babble 10 dB", voices, 7)
    neg = corpus.ordinary_speech(voices, 1.5)

    def count(stream: corpus.Stream, stage: bool) -> int:
        """Wake words found (clips with a detection); for a negative stream, all detections."""
        det = Detector(WakewordConfig(second_stage=stage, micro_wake_word=False))
        assert (det.trigger.second_stage is not None) is stage
        result, _ = evaluate.online(stream, det)
        return sum(h > 0 for h in result.hits) if stream is pos else result.total

    with_stage, without = count(pos, True), count(pos, False)
    print(f"babble 10 dB: {with_stage} vs {without} of {len(pos.clips)} wake words")
    assert with_stage >= without + 2  # measured 7 vs 4 of 12
    assert count(neg, True) == 0, f"{neg.hours * 60:.1f} min of ordinary speech"
    assert len(neg.audio) > 60 * MIC_RATE
