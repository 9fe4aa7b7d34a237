"""Train hey_jarvis's second stage and write device/wakeword/hey_jarvis_second_stage.npz.

    uv run python -m tests.wakeword.train_second_stage

Tuning voices only (corpus.TUNE_VOICES): the tuning half of the bench's evaluation (the wake word in
every condition, ordinary speech in 8 conditions, near misses) and, for training alone, 20 more
minutes of other texts in 15 conditions, 20 minutes of music and near misses in 5 conditions.
`--more` adds the tuning voices' wake word at 6 more tempos and pitches in every condition (other
noise seeds) and 8 training-only voices (MORE_VOICES: espeak accents and variants no held-out
voice uses) saying the wake word in every condition, 10 minutes of ordinary speech in 8 and near
misses in 2; `--neural` adds the three training-only Kokoro voices (corpus.NEURAL_TRAIN_VOICES:
the wake word in every condition, 10 minutes of their speech in 8, near misses in 2); `--gate`
moves GATE. (The shipped file is the plain recipe: with `--more --gate 1e-4` cross-validation
promised more but the held-out voices got 3.6 false accepts per hour; with `--neural` the held-out
neural voices got nothing and the synthetic ones lost 15 points at 10 dB and in rooms, README.)

A frame is a training example when the base model scores it at `GATE` or more (the only frames
the daemon shows the second stage). Positive: the frame ends 0..0.8 s after the wake word's end;
frames near a wake word that are not positive are left out; every other frame is negative. Input:
the newest 16 embeddings and log(base score), standardised. Model: scikit-learn's MLPClassifier
(32 ReLU units, L2 1e-2, early stopping, seed 0), exported to plain numpy.

The operating point (the accepting logit) is chosen by 3-fold cross-validation *across the
tuning voices* (each fold's model never saw the voices it is scored on): the lowest false accepts
per hour on the tuning negatives, then the highest recall in the 10 dB and room conditions. The
held-out voices play no part here. (The shipped file's logit was chosen this way together with a
veto of base detections, logit 0, which the daemon no longer applies: README.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.wakeword.features import FRAME_SAMPLES
from device.wakeword.second_stage import EMBEDDING, MODELS, WINDOW, SecondStage
from tests.wakeword import corpus
from tests.wakeword.corpus import Stream
from tests.wakeword.evaluate import Analysis, accepted, analyse, run_specs

GATE = 1e-3
HIDDEN = 32
ALPHA = 1e-2
ACCEPTS = (0.99, 0.998, 0.9995, 0.9999, 0.99995, 0.99999, 0.999995)
"""Candidate operating points (probabilities; stored as logits)."""
EXTRA_CONDITIONS = (
    *corpus.NEGATIVE_CONDITIONS,
    *(f"{k} 5 dB" for k in ("white", "pink", "babble", "music", "tv")),
    "babble 20 dB",
    "tv 20 dB",
)
NEAR_CONDITIONS = ("clean", "white 10 dB", "pink 10 dB", "tv 10 dB", "room")
MORE_COMBOS = ((0.92, -1), (0.92, 1), (1.08, -1), (1.08, 1), (1.15, -1), (1.15, 1))
"""Tempos and pitches of the extra training renditions (not the evaluation's, nor enrollment's)."""
MORE_CONDITIONS = corpus.CONDITIONS
"""Every condition, with noise and rooms drawn from other seeds than the evaluation's."""
MORE_VOICES = tuple(
    corpus.Voice("espeak", name)
    for name in [
        "en-gb-x-gbcwmd",
        "en-us+m1",
        "en-gb+f1",
        "en-029+m5",
        "en+f5",
        "en-us+klatt2",
        "en-gb-x-gbclan+m6",
        "en+Andy",
    ]
)
"""Training-only voices: espeak accents and variants that no held-out voice uses."""
ALL_VOICES = (*corpus.TUNE_VOICES, *MORE_VOICES, *corpus.NEURAL_TRAIN_VOICES)

Float32 = npt.NDArray[np.float32]


@dataclass
class Part:
    """One stream of training data with its per-frame labels and cross-validation folds."""

    kind: str
    condition: str
    stream: Stream
    analysis: Analysis
    labels: npt.NDArray[np.int8]
    """1 wake word, 0 not, -1 left out."""
    folds: npt.NDArray[np.int8]


def labels(stream: Stream, n: int, positive: bool) -> npt.NDArray[np.int8]:
    ends = (np.arange(n) + 1) * FRAME_SAMPLES
    y = np.zeros(n, np.int8)
    if not positive:
        return y
    for c in stream.clips:
        if c.wake_end is None:
            continue
        w = c.wake_end
        y[(ends >= w - int(1.2 * MIC_RATE)) & (ends < w + int(1.6 * MIC_RATE))] = -1
        y[(ends >= w) & (ends < w + int(0.8 * MIC_RATE))] = 1
    return y


def folds(stream: Stream, n: int) -> npt.NDArray[np.int8]:
    """Each frame's fold: that of the voice of the clip it falls in (three folds of voices)."""
    fold = {str(v): i % 3 for i, v in enumerate(ALL_VOICES)}
    per_clip = np.zeros(len(stream.clips), np.int8)
    for i, c in enumerate(stream.clips):
        m = re.search(r"(espeak|flite|festival|kokoro):[\w+-]+", c.label)
        per_clip[i] = fold.get(m.group(0), i % 3) if m else i % 3
    starts = np.array([c.start for c in stream.clips])
    ends = (np.arange(n) + 1) * FRAME_SAMPLES
    idx = np.clip(np.searchsorted(starts, ends, side="right") - 1, 0, len(stream.clips) - 1)
    out: npt.NDArray[np.int8] = per_clip[idx]
    return out


EXTRA_VOICES = {
    "voices": (MORE_VOICES, {"pos": 9300, "speech": 9500, "near": 9700}, 31),
    "neural": (corpus.NEURAL_TRAIN_VOICES, {"pos": 9900, "speech": 9950, "near": 9990}, 37),
}
"""Training-only voice groups (`--more`, `--neural`): the voices, the base of their streams' noise
seeds, the seed of their texts."""


def _extra(args: tuple[str, str]) -> tuple[Stream, Analysis]:
    kind, condition = args
    voices = corpus.TUNE_VOICES
    group, _, what = kind.rpartition(" ")
    if group:  # a training-only voice group's "pos", "speech" or "near"
        extra, seeds, text_seed = EXTRA_VOICES[group]
        base = {
            "pos": lambda: corpus.positives(extra),
            "speech": lambda: corpus.ordinary_speech(extra, 10.0, seed=text_seed),
            "near": lambda: corpus.near_misses(extra),
        }[what]()
        at = len(condition) if what == "near" else corpus.CONDITIONS.index(condition)
        seed = seeds[what] + at
    elif kind == "pos":
        base = corpus.positives(voices, combos=MORE_COMBOS)
        seed = 9100 + corpus.CONDITIONS.index(condition)
    elif kind == "speech":
        base = corpus.ordinary_speech(voices, 20.0, seed=23)
        seed = 4242 + EXTRA_CONDITIONS.index(condition)
    elif kind == "near":
        base = corpus.near_misses(voices)
        seed = 777 + len(condition)
    else:
        base = corpus.music_alone(20.0, seed=99)
        seed = 0
    s = corpus.apply(base, condition, voices, seed)
    return s, analyse(s)


def data(more: bool = False, neural: bool = False) -> list[Part]:
    """Every training stream (synthesized and analysed, cached after the first run); `more`: the
    extra renditions and voices too; `neural`: the training-only neural voices."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    specs = [
        s for s in corpus.full_specs() if s.split == "tune" and s.kind in ("pos", "speech", "near")
    ]
    extra = [("speech", c) for c in EXTRA_CONDITIONS] + [("music", "clean")]
    extra += [("near", c) for c in NEAR_CONDITIONS]
    if more:
        extra += [("pos", c) for c in MORE_CONDITIONS]
        extra += [("voices pos", c) for c in MORE_CONDITIONS]
        extra += [("voices speech", c) for c in corpus.NEGATIVE_CONDITIONS]
        extra += [("voices near", c) for c in ("clean", "babble 10 dB")]
    if neural:
        extra += [("neural pos", c) for c in corpus.CONDITIONS]
        extra += [("neural speech", c) for c in corpus.NEGATIVE_CONDITIONS]
        extra += [("neural near", c) for c in ("clean", "babble 10 dB")]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        extra_done = list(pool.map(_extra, extra))
    done = run_specs(specs)
    parts: list[Part] = []
    for spec, (s, a) in zip(specs, done, strict=True):
        n = len(a.scores)
        parts.append(
            Part(spec.kind, spec.condition, s, a, labels(s, n, spec.kind == "pos"), folds(s, n))
        )
    for (kind, cond), (s, a) in zip(extra, extra_done, strict=True):
        n = len(a.scores)
        y = labels(s, n, kind.endswith("pos"))
        # extra positives train but do not choose the operating point (comparable to before)
        k = "extra pos" if kind.endswith("pos") else kind.split()[-1]
        where = f"extra {kind.split()[0]} {cond}" if " " in kind else f"extra {cond}"
        parts.append(Part(k, where, s, a, y, folds(s, n)))
    return parts


def features(a: Analysis, keep: npt.NDArray[np.bool_]) -> Float32:
    """Rows of (newest 16 embeddings, log base score) for the kept frames."""
    e = a.embeddings.astype(np.float32)
    pad = np.concatenate([np.zeros((WINDOW - 1, EMBEDDING), np.float32), e])
    idx = np.flatnonzero(keep)[:, None] + np.arange(WINDOW)[None, :]
    w = pad[idx].reshape(len(idx), -1)
    logs = np.log(np.maximum(a.scores[keep], 1e-4))[:, None]
    out: Float32 = np.concatenate([w, logs], 1).astype(np.float32)
    return out


def fit(x: Float32, y: npt.NDArray[np.int8], gate: float = GATE) -> SecondStage:
    """Standardise, fit the network, export it (operating points filled in later)."""
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(0), x.std(0) + 1e-6
    net = MLPClassifier(
        (HIDDEN,), alpha=ALPHA, max_iter=300, early_stopping=True, random_state=0
    ).fit((x - mean) / scale, y)
    f32 = np.float32
    stage = SecondStage(
        mean.astype(f32),
        scale.astype(f32),
        net.coefs_[0].astype(f32),
        net.intercepts_[0].astype(f32),
        net.coefs_[1].astype(f32).reshape(-1),
        float(net.intercepts_[1][0]),
        gate,
        np.inf,
    )
    sample = (x[:500] - mean) / scale
    want = net.predict_proba(sample)[:, 1]
    got = 1 / (1 + np.exp(-stage.logits(x[:500]).astype(np.float64)))
    assert np.allclose(want, got, atol=1e-4), "numpy export differs from the fitted network"
    return stage


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def detections(part: Part, z: Float32, accept: float) -> int | float:
    ok = (z >= accept) | (part.analysis.scores >= 0.5)
    r = accepted(part.stream, ok)
    return r.recall() if part.kind == "pos" else r.total


def choose(parts: Sequence[Part], logits: Sequence[Float32]) -> float:
    """The accepting logit with the fewest false accepts per hour on the tuning negatives (out of
    fold), then the best recall at 10 dB and in rooms."""
    hours = sum(p.stream.hours for p in parts if p.kind in ("speech", "music"))
    best: tuple[float, float, float] | None = None
    for pa in ACCEPTS:
        a = logit(pa)
        fa = sum(
            detections(p, z, a)
            for p, z in zip(parts, logits, strict=True)
            if p.kind in ("speech", "music")
        )
        ten = [
            detections(p, z, a)
            for p, z in zip(parts, logits, strict=True)
            if p.kind == "pos" and ("10 dB" in p.condition or p.condition in ("room", "far"))
        ]
        clean = [
            detections(p, z, a)
            for p, z in zip(parts, logits, strict=True)
            if p.kind == "pos" and p.condition == "clean"
        ]
        print(
            f"  accept {pa:<9} clean {np.mean(clean):.0%}  10 dB + rooms {np.mean(ten):.0%}  false accepts {fa / hours:.2f}/h"
        )
        key = (fa / hours, -float(np.mean(ten)), a)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    return best[2]


def main() -> None:
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=MODELS["hey_jarvis"])
    ap.add_argument("--more", action="store_true", help="the extra renditions and voices too")
    ap.add_argument("--neural", action="store_true", help="the training-only neural voices too")
    ap.add_argument("--gate", type=float, default=GATE, help=f"base score gate ({GATE})")
    args = ap.parse_args()
    t0 = time.monotonic()
    gate = args.gate
    parts = data(args.more, args.neural)
    keeps = [(p.analysis.scores >= gate) & (p.labels >= 0) for p in parts]
    x = np.concatenate([features(p.analysis, k) for p, k in zip(parts, keeps, strict=True)])
    y = np.concatenate([p.labels[k] for p, k in zip(parts, keeps, strict=True)])
    f = np.concatenate([p.folds[k] for p, k in zip(parts, keeps, strict=True)])
    print(
        f"{len(parts)} streams, {len(y)} frames ({y.mean():.0%} wake word), {time.monotonic() - t0:.0f} s"
    )
    fold_stages = [fit(x[f != k], y[f != k], gate) for k in range(3)]
    logits: list[Float32] = []
    for p in parts:
        gated = p.analysis.scores >= gate
        z = np.full(len(gated), -np.inf, np.float32)
        if gated.any():
            rows = features(p.analysis, gated)
            fr = p.folds[gated]
            zz = np.zeros(len(rows), np.float32)
            for k, stage in enumerate(fold_stages):  # each frame by the model blind to its voice
                mine = fr == k
                if mine.any():
                    zz[mine] = stage.logits(rows[mine])
            z[gated] = zz
        logits.append(z)
    print("out-of-fold operating points (tuning voices):")
    accept = choose(parts, logits)
    final = fit(x, y, gate)
    stage = SecondStage(
        final.mean, final.scale, final.w1, final.b1, final.w2, final.b2, gate, accept
    )
    path = args.out
    stage.save(path)
    print(f"wrote {path}: accept logit {accept:.2f} ({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
