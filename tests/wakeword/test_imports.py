"""The running daemon carries only what it uses: openWakeWord's algorithm without the package's
imports (scikit-learn, scipy, onnxruntime, requests, tqdm), and the model files of the
pyopen-wakeword and pymicro-wakeword wheels without their code or the TFLite C library each
bundles (the models run on ai-edge-litert)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.service.test_daemon_notify import Daemon, start_daemon

pytestmark = pytest.mark.integration
__all__ = ["start_daemon"]  # the fixture, shared with tests/service
UNUSED = (
    "sklearn",
    "scipy",
    "onnxruntime",
    "requests",
    "tqdm",
    "openwakeword",
    "tflite_runtime",
    "pyopen_wakeword",
    "pymicro_wakeword",
)
NATIVE = ("sklearn", "scipy", "onnxruntime")
"""Packages with native libraries: a process that imported them has them mapped."""


def test_the_running_daemon_maps_no_unused_native_library(
    start_daemon: Callable[[str], Daemon],
) -> None:
    proc, ns, _ = start_daemon("")
    ns.wait_for(lambda msgs: any(m.fields.get("READY") == "1" for m in msgs), 60, "READY=1")
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "ai_edge_litert" in maps  # the check can see a package's native library
    assert "micro_features_cpp" in maps  # microWakeWord's front end runs
    for pkg in NATIVE:
        assert f"site-packages/{pkg}/" not in maps, pkg
    assert "tensorflowlite_c" not in maps  # the wheels' own TFLite runtimes


def test_the_daemons_modules_import_none_of_the_unused_packages(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import device.run_cmd, device.daemon, device.live, device.app.appliance\n"
        "from device.config import WakewordConfig\n"
        "from device.wakeword.detector import build_detector\n"
        f"build_detector(WakewordConfig(), Path({str(tmp_path)!r}))\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert "ai_edge_litert" in loaded and "google" in loaded and "pymicro_features" in loaded
    assert not loaded & set(UNUSED), loaded & set(UNUSED)
