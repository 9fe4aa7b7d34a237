"""A second stage for the built-in hey_jarvis model: a small network on the same speech embeddings
that decides, on every frame the base model scores at `gate` or more, whether it is the wake word.

The base model alone misses wake words in noise and rooms and, at a threshold low enough to catch
them, accepts ordinary speech. The second stage reads what the base model reads (the newest 16
embeddings, 1.28 s) plus the base model's own score, and accepts a frame whose logit reaches
`accept` (a wake word the base model scored low, e.g. in babble). It only adds: what the base
model accepts stands. (It used to veto base detections it found implausible, which kept most near
misses out, "hey jarvey" and the like; but it learnt from three robotic synthesizers only, and it
vetoed a neural voice, nearer a person, that the base model was sure of: 56 % of that voice's
clean wake words got through, README.)

One hidden layer (ReLU) and a logistic output, in plain numpy: 1537 x 32 weights, about 50,000
multiply-adds per gated frame. Trained by `tests/wakeword/train_second_stage.py` on the wake-word
corpus's tuning voices only (synthesized speech in every condition against ordinary speech, near
misses and noise); the thresholds were chosen on those voices by cross-validation across voices;
README reports the held-out voices. File: `hey_jarvis_second_stage.npz` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.config import WakewordConfig
from device.wakeword.models import ModelSpec, models_dir

WINDOW = 16
"""Embeddings read per frame (1.28 s), as the base classifier reads."""
EMBEDDING = 96
FORMAT = 1
MODELS = {"hey_jarvis": Path(__file__).with_name("hey_jarvis_second_stage.npz")}
"""Base models that have a trained second stage."""

Float32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SecondStage:
    """The network's parameters and its operating points (logits)."""

    mean: Float32
    scale: Float32
    w1: Float32
    b1: Float32
    w2: Float32
    b2: float
    gate: float
    """Base-model score from which a frame is looked at."""
    accept: float
    """Logit that accepts a frame on its own."""

    def features(self, embeddings: Float32, score: float) -> Float32:
        """The input: the newest WINDOW embeddings (rows oldest first) and log(base score)."""
        x = np.empty(WINDOW * EMBEDDING + 1, np.float32)
        x[:-1] = embeddings[-WINDOW:].reshape(-1)
        x[-1] = np.log(max(score, 1e-4))
        return x

    def logit(self, embeddings: Float32, score: float) -> float:
        """The network's logit for the frame (higher: more like the wake word)."""
        return float(self.logits(self.features(embeddings, score)[None])[0])

    def logits(self, x: Float32) -> Float32:
        """Logits for many feature rows at once (training and evaluation)."""
        h = np.maximum(((x - self.mean) / self.scale) @ self.w1 + self.b1, 0.0)
        out: Float32 = (h @ self.w2 + self.b2).astype(np.float32)
        return out

    def accepts(self, embeddings: Float32, score: float) -> bool:
        """Whether the second stage accepts the frame on its own (what the base model accepts
        stands without it)."""
        return score >= self.gate and self.logit(embeddings, score) >= self.accept

    def save(self, path: Path) -> None:
        """Write the parameters (npz)."""
        np.savez(
            path,
            format=np.array(FORMAT),
            mean=self.mean,
            scale=self.scale,
            w1=self.w1,
            b1=self.b1,
            w2=self.w2,
            b2=np.array(self.b2),
            operating=np.array([self.gate, self.accept]),
        )

    @classmethod
    def load(cls, path: Path) -> SecondStage:
        """Read the parameters (ValueError when the file is not a second stage)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                fmt = int(z["format"])
                gate, accept = (float(v) for v in z["operating"][:2])  # (a veto came third)
                stage = cls(
                    z["mean"].astype(np.float32),
                    z["scale"].astype(np.float32),
                    z["w1"].astype(np.float32),
                    z["b1"].astype(np.float32),
                    z["w2"].astype(np.float32).reshape(-1),
                    float(z["b2"]),
                    gate,
                    accept,
                )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a wake-word second stage ({exc})") from None
        n = WINDOW * EMBEDDING + 1
        if fmt != FORMAT or stage.w1.shape[0] != n or stage.mean.shape != (n,):
            raise ValueError(f"{path}: unsupported second stage (format {fmt}, {stage.w1.shape})")
        return stage


def second_stage_for(spec: ModelSpec, cfg: WakewordConfig | None = None) -> SecondStage | None:
    """The shipped second stage of a built-in model (None: turned off, a custom model, a built-in
    one without a second stage, or noise suppression on: it was trained on the plain features)."""
    cfg = cfg or WakewordConfig()
    path = MODELS.get(spec.name)
    builtin = spec.path == models_dir() / f"{spec.name}.tflite"
    enabled = cfg.second_stage and not cfg.noise_suppression
    return SecondStage.load(path) if enabled and builtin and path is not None else None
