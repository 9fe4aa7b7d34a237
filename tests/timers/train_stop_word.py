"""Train the "stop" keyword model and write device/timers/stop_word.npz.

    uv run python -m tests.timers.train_stop_word

Tuning voices only (tests/timers/stop_word_data.py); a plain logistic regression by gradient
descent on standardised windows, positives weighted up to balance the classes, a little L2.
"""

from __future__ import annotations

import numpy as np

from device.timers.stopword import MODEL_PATH, StopWord
from tests.timers.stop_word_data import labelled, ring_alone, stops, windows, with_ring
from tests.wakeword import corpus

MINUTES = 10.0


def train(l2: float = 1e-2, iters: int = 600, rate: float = 0.5) -> StopWord:
    """Fit on the tuning voices' data."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for stream in (stops(corpus.TUNE_VOICES), with_ring(stops(corpus.TUNE_VOICES))):
        x, pos, near = labelled(stream)
        xs += [x[pos], x[~pos & ~near]]
        ys += [np.ones(pos.sum()), np.zeros((~pos & ~near).sum())]
    speech = corpus.ordinary_speech(corpus.TUNE_VOICES, MINUTES)
    for stream in (speech, with_ring(speech), ring_alone(2.0)):
        x = windows(stream)
        xs.append(x)
        ys.append(np.zeros(len(x)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    w, b = np.zeros(z.shape[1]), 0.0
    weight = np.where(y > 0, (len(y) - y.sum()) / max(1.0, y.sum()), 1.0)
    weight /= weight.mean()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * weight
        w -= rate * (z.T @ g / len(y) + l2 * w)
        b -= rate * float(g.mean())
    f32 = np.float32
    return StopWord(mean.astype(f32), scale.astype(f32), w.astype(f32), float(b))


if __name__ == "__main__":
    model = train()
    model.save(MODEL_PATH)
    print(f"wrote {MODEL_PATH}")
