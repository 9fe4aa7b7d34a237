"""microWakeWord's model beside openWakeWord's: which wake words have one, its scores on real
speech, how the trigger counts it, and what it adds through the Detector as the daemon runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.config import WakeAudience, WakewordConfig
from device.wakeword import detector as detector_module
from device.wakeword.detector import Detector, FrameTrigger
from device.wakeword.micro import MicroModel, MicroSpec, micro_model_for, micro_spec_for
from device.wakeword.models import ModelSpec, models_dir, resolve_model
from device.wakeword.verifier import VoiceVerifier
from tests.wakeword import corpus, evaluate

JOE = corpus.Voice("piper", "joe")


@pytest.mark.unit
def test_built_in_wake_words_get_the_model_and_its_authors_operating_point(
    tmp_path: Path,
) -> None:
    spec = micro_spec_for(resolve_model("hey_jarvis"))
    assert spec is not None and spec.path.is_file()
    assert (spec.cutoff, spec.window) == (0.97, 5)  # from the model's JSON, not chosen here
    assert spec.hears(0.98) and not spec.hears(0.97)
    assert micro_spec_for(resolve_model("okay_nabu")) is not None
    assert micro_spec_for(resolve_model("hey_rhasspy")) is None  # microWakeWord has none
    assert (
        micro_spec_for(resolve_model("hey_jarvis"), WakewordConfig(micro_wake_word=False)) is None
    )
    # A custom model that happens to be called hey_jarvis may be another wake word.
    custom = tmp_path / "hey_jarvis.tflite"
    custom.write_bytes((models_dir() / "hey_jarvis.tflite").read_bytes())
    assert micro_model_for(ModelSpec("hey_jarvis", custom)) is None


@pytest.mark.integration
@pytest.mark.parametrize(
    "error",
    [FileNotFoundError("hey_jarvis.json"), ImportError("micro_features_cpp: undefined symbol")],
)
def test_a_broken_install_of_it_leaves_openwakeword_listening(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    def broken(*_: object) -> None:
        raise error

    monkeypatch.setattr(detector_module, "micro_model_for", broken)
    det = Detector(WakewordConfig())
    # What the journal says, and the wake word still wakes it.
    assert "microWakeWord's model left out" in caplog.text and str(error) in caplog.text
    wake = corpus.lay_out("wake", [("w", corpus.say(JOE, "hey jarvis"), None)])
    _, hits = evaluate.online(wake, det)
    assert len(hits) == 1 and not hits[0].micro


@pytest.mark.integration
def test_it_hears_a_spoken_wake_word_and_not_ordinary_speech() -> None:
    spec = MicroSpec.builtin("hey_jarvis")
    assert spec is not None
    model = MicroModel(spec)
    wake = corpus.lay_out("wake", [("w", corpus.say(JOE, "hey jarvis"), None)]).audio
    speech = corpus.ordinary_speech((JOE,), 0.5).audio

    def scores(m: MicroModel, audio: np.ndarray) -> np.ndarray:
        n = len(audio) // 1280 * 1280
        return np.array([m.score(f) for f in audio[:n].reshape(-1, 1280)])

    heard = scores(model, wake)
    assert heard.max() > spec.cutoff, heard.max()
    assert scores(model, speech).max() < 0.5
    # reset() forgets everything heard: speech that starts at once (no silence to wash the
    # state out) scores as it does on a fresh model.
    said = corpus.say(JOE, "hey jarvis what time is it")
    model.reset()
    fresh = scores(MicroModel(spec), said)
    assert np.array_equal(scores(model, said), fresh) and fresh.max() > 0


def _found(stream: corpus.Stream, cfg: WakewordConfig, voices: list[VoiceVerifier]) -> int:
    """Clips of `stream` the Detector finds, as the daemon runs it."""
    result, _ = evaluate.online(stream, Detector(cfg, voices=voices))
    return sum(h > 0 for h in result.hits)


@pytest.mark.unit
def test_the_trigger_counts_it_where_the_base_model_scored_low() -> None:
    trigger = FrameTrigger(WakewordConfig(), "hey_jarvis")
    assert trigger.update(0.001, 1280) is None
    hit = trigger.update(0.001, 2560, heard=True)
    assert hit is not None and hit.micro and not hit.second_stage
    # While the speaker plays only the base model's barge-in threshold interrupts it.
    trigger = FrameTrigger(WakewordConfig(), "hey_jarvis")
    trigger.barge_in = True
    assert trigger.update(0.3, 1280, heard=True) is None
    # A base-model detection is the base model's, whatever microWakeWord says.
    hit = FrameTrigger(WakewordConfig(), "hey_jarvis").update(0.9, 1280, heard=True)
    assert hit is not None and not hit.micro


@pytest.mark.integration
def test_enrolled_only_mode_still_asks_for_the_enrolled_voice() -> None:
    """With one voice enrolled and only enrolled voices allowed, other voices' wake words in
    10 dB white noise (where microWakeWord's model hears more of them) pass no more often than
    without it; the enrolled voice's own still wake it."""
    joe = [evaluate.enroll_voice(JOE)]
    others = corpus.HELD_OUT_VOICES
    stream = corpus.apply(corpus.positives(others, 3), "white 10 dB", others, 7)
    own = corpus.apply(corpus.positives((JOE,), 3), "white 10 dB", others, 7)
    only = WakewordConfig(who_can_wake=WakeAudience.ENROLLED)
    without = only.model_copy(update={"micro_wake_word": False})
    anyone = [
        _found(stream, c, joe) for c in (WakewordConfig(), WakewordConfig(micro_wake_word=False))
    ]
    print(f"anyone: {anyone[0]} vs {anyone[1]} of {len(stream.clips)}")
    assert anyone[0] >= anyone[1]  # measured 29 vs 27 of 33 (the next test asserts the lift)
    passed = _found(stream, only, joe), _found(stream, without, joe)
    print(f"enrolled-only, other voices passed: {passed[0]} vs {passed[1]} of {len(stream.clips)}")
    # Measured 10 and 10 (README: the voiceprint's known limit); one clip of slack for the float
    # kernels of another CPU.
    assert passed[0] <= passed[1] + 1
    assert _found(own, only, joe) == len(own.clips)


@pytest.mark.integration
def test_in_noise_the_detector_finds_wake_words_openwakeword_misses() -> None:
    """Held-out voices saying the wake word far away and in 10 dB white noise and babble, through
    the Detector as the daemon runs it: with microWakeWord's model it finds more of them than
    without, and nothing more in ordinary speech by the same voices in babble."""
    voices = corpus.HELD_OUT_VOICES
    clean = corpus.positives(voices, 3)
    pos = [corpus.apply(clean, c, voices, 7) for c in ("far", "white 10 dB", "babble 10 dB")]
    neg = corpus.apply(corpus.ordinary_speech(voices, 1.5), "babble 10 dB", voices, 8)

    def false_accepts(micro: bool) -> int:
        return len(evaluate.online(neg, Detector(WakewordConfig(micro_wake_word=micro)))[1])

    with_micro = sum(_found(s, WakewordConfig(), []) for s in pos)
    without = sum(_found(s, WakewordConfig(micro_wake_word=False), []) for s in pos)
    print(f"far, white and babble 10 dB: {with_micro} vs {without} of {3 * len(clean.clips)}")
    assert with_micro >= without + 8  # measured 78 vs 62 of 99
    assert false_accepts(True) <= false_accepts(False)
