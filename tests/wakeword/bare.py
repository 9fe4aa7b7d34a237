"""openWakeWord itself, as the baseline the daemon's wake path is measured against (tests only).

The daemon never imports the openwakeword package (device/wakeword/features.py); the baseline is
its `Model` class exactly as its README uses it, on the same TFLite files, with ai-edge-litert
standing in for tflite-runtime (no wheels for Python >= 3.12, breaks with numpy 2).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from device.wakeword.models import models_dir


def install_tflite_shim() -> None:
    """Make `import tflite_runtime.interpreter` (openWakeWord's import) load ai-edge-litert."""
    if "tflite_runtime.interpreter" in sys.modules:
        return
    from ai_edge_litert import interpreter

    pkg = types.ModuleType("tflite_runtime")
    pkg.interpreter = interpreter  # type: ignore[attr-defined]
    pkg.__path__ = []
    sys.modules["tflite_runtime"] = pkg
    sys.modules["tflite_runtime.interpreter"] = interpreter


def bare_model(name: str = "hey_jarvis") -> Any:
    """openwakeword.model.Model with one built-in wake word."""
    install_tflite_shim()
    from openwakeword.model import Model

    d = models_dir()
    return Model(
        wakeword_models=[str(d / f"{name}.tflite")],
        inference_framework="tflite",
        melspec_model_path=str(d / "melspectrogram.tflite"),
        embedding_model_path=str(d / "embedding_model.tflite"),
    )
