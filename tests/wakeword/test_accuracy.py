"""Wake-word accuracy on an espeak-ng evaluation set: the bare engine vs the daemon's path.

bare   = openWakeWord `Model.predict` on 80 ms frames, a clip counts when any frame scores >= 0.5.
daemon = `Detector.process` on 20 ms AudioBlocks at the default [wakeword] settings (noise
         suppression, threshold, trigger frames, refractory time), a clip counts when a
         WakeDetected falls inside it (up to 1 s after it ends).
Positives: 10 voices x 2 speeds x 2 pitches, "hey jarvis" + a question, clean / white / pink noise
at 10 dB SNR (active speech level). Negatives: >= 10 minutes of ordinary speech, clean and in white
noise. Near misses are reported, not asserted. Each stream is scored in one pass (no resets).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from device.config import WakewordConfig
from device.events import MIC_RATE, AudioBlock
from device.wakeword.detector import Detector
from device.wakeword.models import FRAME_SAMPLES, install_tflite_shim, models_dir
from tests.wakeword import evalset
from tests.wakeword.evalset import Stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
AFTER = MIC_RATE  # a detection up to 1 s after a clip's end still counts for it


@dataclass
class Result:
    """Detections per clip, all detections, and the error of each first detection's end estimate."""

    hits: list[int]
    total: int
    end_errors_ms: list[float]

    def rate(self) -> float:
        return float(np.mean([h > 0 for h in self.hits]))

    def count(self) -> int:
        return sum(self.hits)


def _clip_of(stream: Stream, sample: int) -> int | None:
    for i, c in enumerate(stream.clips):
        if c.start <= sample < c.end + AFTER:
            return i
    return None


def run_bare(stream: Stream, threshold: float = 0.5, refractory_s: float = 2.0) -> Result:
    """openWakeWord Model.predict; a detection is a frame >= threshold (then a refractory time)."""
    install_tflite_shim()
    from openwakeword.model import Model

    d = models_dir()
    model = Model(
        wakeword_models=[str(d / "hey_jarvis.tflite")],
        inference_framework="tflite",
        melspec_model_path=str(d / "melspectrogram.tflite"),
        embedding_model_path=str(d / "embedding_model.tflite"),
    )
    hits = [0] * len(stream.clips)
    total = 0
    blocked = -1
    n = len(stream.audio) // FRAME_SAMPLES
    for k, frame in enumerate(stream.audio[: n * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)):
        end = (k + 1) * FRAME_SAMPLES
        if model.predict(frame)["hey_jarvis"] >= threshold and end >= blocked:
            blocked = end + int(refractory_s * MIC_RATE)
            total += 1
            i = _clip_of(stream, end)
            if i is not None:
                hits[i] += 1
    return Result(hits, total, [])


def run_daemon(stream: Stream, cfg: WakewordConfig | None = None) -> Result:
    """The daemon's wake-word path on 20 ms blocks."""
    detector = Detector(cfg or WakewordConfig())
    hits = [0] * len(stream.clips)
    total = 0
    errors: list[float] = []
    for i in range(0, len(stream.audio), 320):
        for hit in detector.process(AudioBlock(stream.audio[i : i + 320].tobytes(), i)):
            total += 1
            k = _clip_of(stream, hit.end)
            if k is None:
                continue
            hits[k] += 1
            clip = stream.clips[k]
            if hits[k] == 1 and clip.wake_end is not None:
                errors.append((hit.end - clip.wake_end) * 1000 / MIC_RATE)
    return Result(hits, total, errors)


def _near_miss_table(stream: Stream, bare: Result, daemon: Result) -> list[str]:
    by_phrase: dict[str, list[int]] = {}
    for clip, b, d in zip(stream.clips, bare.hits, daemon.hits, strict=True):
        phrase = clip.label.rsplit(" (", 1)[0]
        counts = by_phrase.setdefault(phrase, [0, 0, 0])
        counts[0] += b > 0
        counts[1] += d > 0
        counts[2] += 1
    return [f"  {p!r:<36} bare {b}/{n}  daemon {d}/{n}" for p, (b, d, n) in by_phrase.items()]


def streams() -> dict[str, Stream]:
    """Every stream of the evaluation, by name (built from the on-disk cache after the first run)."""
    pos = evalset.positives()
    neg = evalset.negatives()
    return {
        "pos clean": pos,
        "pos white 10 dB": evalset.with_noise(pos, "white", seed=1),
        "pos pink 10 dB": evalset.with_noise(pos, "pink", seed=2),
        "neg clean": neg,
        "neg white 10 dB": evalset.with_noise(neg, "white", seed=3),
        "neg pink 10 dB": evalset.with_noise(neg, "pink", seed=4),
        "near": evalset.near_misses(),
    }


def _job(engine: str, name: str) -> Result:
    """One engine over one stream (runs in a worker process: the machine has 2 cores)."""
    stream = streams()[name]
    return run_bare(stream) if engine == "bare" else run_daemon(stream)


def test_daemon_path_beats_the_bare_engine_and_meets_the_targets() -> None:
    cfg = WakewordConfig()
    all_streams = streams()
    jobs = [(e, name) for name in all_streams for e in ("bare", "daemon")]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        done = dict(zip(jobs, pool.map(_job, *zip(*jobs, strict=True)), strict=True))
    res = {name: (done["bare", name], done["daemon", name]) for name in all_streams}
    pos = all_streams["pos clean"]
    positives = {k[4:]: all_streams[k] for k in all_streams if k.startswith("pos ")}
    negatives = {k[4:]: all_streams[k] for k in all_streams if k.startswith("neg ")}
    near = all_streams["near"]
    rec = {k: res["pos " + k] for k in positives}
    fa = {k: res["neg " + k] for k in negatives}
    near_bare, near_daemon = res["near"]

    n = len(pos.clips)
    lines = [
        "",
        f"wake word 'hey jarvis': bare = Model.predict >= 0.5; daemon = defaults "
        f"(threshold {cfg.threshold}, trigger_frames {cfg.trigger_frames}, "
        f"noisy_threshold {cfg.noisy_threshold}, noisy_trigger_frames {cfg.noisy_trigger_frames}, "
        f"noise_suppression {cfg.noise_suppression})",
        f"{'positives (' + str(n) + ' clips)':<28}{'bare':>8}{'daemon':>8}",
    ]
    lines += [f"  {k:<26}{b.rate():>8.0%}{d.rate():>8.0%}" for k, (b, d) in rec.items()]
    lines.append(f"{'false accepts':<28}{'bare':>8}{'daemon':>8}")
    for k, s in negatives.items():
        b, d = fa[k]
        lines.append(f"  {f'negatives {k} ({s.seconds / 60:.1f} min)':<26}{b.total:>8}{d.total:>8}")
    lines.append(f"near misses ({len(near.clips)} clips, 3 voices each): detections")
    lines += _near_miss_table(near, near_bare, near_daemon)
    errs = [e for _, d in rec.values() for e in d.end_errors_ms]
    lines.append(
        f"wake word end estimate - true end: median {np.median(errs):+.0f} ms, "
        f"min {min(errs):+.0f} ms, max {max(errs):+.0f} ms ({len(errs)} detections)"
    )
    print("\n".join(lines))

    for k, (b, d) in rec.items():
        assert d.rate() >= b.rate(), f"{k}: daemon path below the bare engine"
    assert rec["clean"][1].rate() >= 0.95
    # The target for noisy recall is 85 %; measured 85 % (white 82 %, pink 88 %) with the
    # 2-frame rule in noise. The floor leaves two clips of slack for runtime/library differences.
    noisy = [h for k, (_, d) in rec.items() if k != "clean" for h in d.hits]
    assert np.mean([h > 0 for h in noisy]) >= 0.83
    assert all(s.seconds >= 600 for s in negatives.values())
    for k, (_, d) in fa.items():
        assert d.total == 0, f"false accepts on negatives {k}"
    # The pre-roll starts at the estimate: never more than 100 ms after the true end.
    assert max(errs) <= 100
    assert min(errs) >= -600
