"""Saying "stop" (no wake word) while a timer rings: a small keyword model on the wake-word
engine's own speech embeddings.

The wake-word detector already computes openWakeWord's 96-value speech embedding every 80 ms;
while the appliance rings it also scores the newest `WINDOW` of them (0.64 s, plus the embedding's
own ~0.76 s of context) with a logistic regression (`stop_word.npz`: per-feature mean and scale,
weights, bias; 768 weights). Trained by `tests/timers/train_stop_word.py` on synthesized "stop"s by
the wake-word corpus's tuning voices, clean and over the ring, against ordinary speech, speech
over the ring and the ring alone; the held-out voices' numbers are in the module constants below.
Plain numpy: nothing more is loaded than the detector has already.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

WINDOW = 8
"""Embeddings per window (80 ms each)."""
THRESHOLD = 0.9
"""Probability that counts as "stop". On the held-out voices (11 voices, 3 synthesizers, 9
renditions each; tests/timers/test_stop_word.py measures it again): recall 99/99 clean and 95 %
over the ring; false stops 0 in 10 min of ordinary speech, 0 in the same over the ring, 0 in 2 min
of the ring alone. Synthesized voices only: real ones are not measured yet."""
MODEL_PATH = Path(__file__).with_name("stop_word.npz")

Float32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StopWord:
    """The keyword model: score(embeddings) is the probability that "stop" just ended."""

    mean: Float32
    scale: Float32
    weights: Float32
    bias: float

    def score(self, embeddings: Float32) -> float:
        """Probability for the newest WINDOW embeddings (rows oldest first)."""
        x = embeddings[-WINDOW:].reshape(-1)
        z = float(((x - self.mean) / self.scale) @ self.weights) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))

    def scores(self, windows: Float32) -> Float32:
        """Probabilities for many flattened windows at once (evaluation)."""
        z = ((windows - self.mean) / self.scale) @ self.weights + self.bias
        out: Float32 = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return out

    def save(self, path: Path = MODEL_PATH) -> None:
        """Write the parameters (npz)."""
        np.savez(path, mean=self.mean, scale=self.scale, weights=self.weights, bias=self.bias)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> StopWord:
        """Read the parameters (ValueError when the file is not one)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                m = cls(
                    z["mean"].astype(np.float32),
                    z["scale"].astype(np.float32),
                    z["weights"].astype(np.float32),
                    float(z["bias"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a stop-word model ({exc})") from None
        if m.weights.shape != (WINDOW * 96,):
            raise ValueError(f"{path}: expected {WINDOW * 96} weights, got {m.weights.shape}")
        return m
