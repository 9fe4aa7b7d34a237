"""microWakeWord's model for the same wake word: a second detector, trained by someone else on other
data, heard next to openWakeWord's.

openWakeWord's hey_jarvis and its second stage miss a third of the wake words in 10 dB noise and far
away (on voices never used to tune them, README). microWakeWord (Kevin Ahrendt; the models ESPHome
runs on microcontrollers) has its own hey_jarvis, trained on other synthetic voices and real
negatives, with its own front end (TFLite Micro's: noise reduction and per-channel gain control).
Where one misses the other often hears, so a frame counts when either is sure: openWakeWord at its
threshold (or its second stage), or microWakeWord's probability, averaged over its sliding window,
above the cutoff its author ships (0.97 for hey_jarvis). Nothing is tuned here: the cutoff and the
window come from the model's JSON.

The model files come from the pymicro-wakeword wheel (read as data, like pyopen-wakeword's); the
front end is pymicro-features (TFLite Micro's audio front end in C); the model runs on ai-edge-litert,
the runtime openWakeWord's models already use. It is a streaming model: it keeps its own state
between calls, so one instance listens to one stream. Per 80 ms frame: 8 front-end steps and about
2.7 invocations of a 52 KB int8 model.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import WakewordConfig
from device.wakeword.models import ModelSpec, wheel_models
from device.wakeword.models import models_dir as openwakeword_dir

STEP_SAMPLES = 160
"""The front end's step (10 ms at 16 kHz)."""
MODELS = ("hey_jarvis", "alexa", "hey_mycroft", "okay_nabu")
"""Wake words whose microWakeWord models ship in the pymicro-wakeword wheel."""


def models_dir() -> Path:
    """Folder of the model files shipped in the pymicro-wakeword wheel."""
    return wheel_models("pymicro_wakeword")


@dataclass(frozen=True, slots=True)
class MicroSpec:
    """A microWakeWord model and the operating point its author ships with it."""

    name: str
    path: Path
    cutoff: float
    """Mean probability over `window` invocations that counts as the wake word."""
    window: int

    def hears(self, score: float) -> bool:
        """Whether a frame's score (`MicroModel.score`) counts as the wake word."""
        return score > self.cutoff

    @classmethod
    def builtin(cls, name: str) -> MicroSpec | None:
        """The shipped model for a built-in wake word (None: there is none)."""
        if name not in MODELS:
            return None
        folder = models_dir()
        meta = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        micro = meta["micro"]
        return cls(
            name,
            folder / meta["model"],
            float(micro["probability_cutoff"]),
            int(micro["sliding_window_size"]),
        )


class MicroModel:
    """One stream into a microWakeWord model: `score(frame)` per 80 ms frame."""

    def __init__(self, spec: MicroSpec) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from pymicro_features import MicroFrontend

        self.spec = spec
        self._frontend = MicroFrontend()
        self._interpreter = Interpreter
        self._interp = self._load()
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = int(inp["index"]), int(out["index"])
        self._in_dtype = inp["dtype"]
        info = np.iinfo(self._in_dtype)
        self._in_range = (int(info.min), int(info.max))
        self._in_scale, self._in_zero = (float(v) for v in inp["quantization"])
        self._out_scale, self._out_zero = (float(v) for v in out["quantization"])
        self._stride = int(inp["shape"][1])
        self._pending = b""
        """Samples the front end has not taken yet (it takes one 10 ms step at a time)."""
        self._features: list[list[float]] = []
        self._probs: deque[float] = deque(maxlen=spec.window)

    def _load(self) -> Any:
        interp = self._interpreter(model_path=str(self.spec.path), num_threads=1)
        interp.allocate_tensors()
        return interp

    def reset(self) -> None:
        """Forget all audio heard (the front end's noise estimate and the model's state)."""
        self._frontend = type(self._frontend)()
        # Its state is in resource variables, which reset_all_variables() leaves as they are:
        # only a new interpreter starts afresh (as pymicro-wakeword reloads its model).
        self._interp = self._load()
        self._pending = b""
        self._features.clear()
        self._probs.clear()

    def score(self, frame: npt.NDArray[np.int16]) -> float:
        """The highest windowed probability reached during this frame (0 until the window has
        filled)."""
        best = 0.0
        pcm = self._pending + frame.tobytes()
        pos = 0
        while pos + 2 * STEP_SAMPLES <= len(pcm):
            out = self._frontend.process_samples(pcm[pos : pos + 2 * STEP_SAMPLES])
            pos += 2 * out.samples_read
            if not out.features:
                continue
            self._features.append(out.features)
            if len(self._features) < self._stride:
                continue
            x = np.asarray(self._features, np.float32)[None] / self._in_scale + self._in_zero
            self._features.clear()
            q = np.clip(np.round(x), *self._in_range).astype(self._in_dtype)  # loud: no wrap
            self._interp.set_tensor(self._in_index, q)
            self._interp.invoke()
            raw = float(self._interp.get_tensor(self._out_index).item())
            self._probs.append((raw - self._out_zero) * self._out_scale)
            if len(self._probs) == self._probs.maxlen:
                best = max(best, sum(self._probs) / len(self._probs))
        self._pending = pcm[pos:]
        return best

    def hears(self, score: float) -> bool:
        """Whether a frame's score counts as the wake word."""
        return self.spec.hears(score)


def micro_spec_for(spec: ModelSpec, cfg: WakewordConfig | None = None) -> MicroSpec | None:
    """The microWakeWord model for a built-in wake word (None: turned off, a custom model, or a
    built-in one microWakeWord has no model for, e.g. hey_rhasspy)."""
    cfg = cfg or WakewordConfig()
    builtin = spec.path == openwakeword_dir() / f"{spec.name}.tflite"
    return MicroSpec.builtin(spec.name) if cfg.micro_wake_word and builtin else None


def micro_model_for(spec: ModelSpec, cfg: WakewordConfig | None = None) -> MicroModel | None:
    """`micro_spec_for`, loaded."""
    micro = micro_spec_for(spec, cfg)
    return MicroModel(micro) if micro is not None else None
