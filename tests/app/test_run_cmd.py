"""`livespeaker run` with a configuration the daemon cannot use exits 78 (no restart loop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[leds]\nmode = "disco"\n', "leds.mode"),
        ('[gpio]\npin_factory = "no-such-factory"\n', "gpio.pin_factory"),
        ('[wakeword]\nmodel = "/nonexistent/hey_nobody.tflite"\n', "wakeword.model"),
    ],
)
def test_unusable_config_exits_78(tmp_path: Path, toml: str, names: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n{toml}')
    proc = subprocess.run(
        [sys.executable, "-m", "device", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "GEMINI_API_KEY": "x"},
    )
    assert proc.returncode == 78, proc.stderr[-2000:]
    assert names in proc.stderr
