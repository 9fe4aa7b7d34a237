"""The command line: each subcommand's module is imported only when that subcommand is chosen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import COMMANDS, build_parser, chosen_command

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
HEAVY = ("google.genai", "openwakeword", "sounddevice", "ai_edge_litert", "gpiozero", "soxr")


def test_each_help_line_is_its_modules_docstring() -> None:
    for name, (module, help_line) in COMMANDS.items():
        source = (REPO / (module.replace(".", "/") + ".py")).read_text()
        doc = (ast.get_docstring(ast.parse(source)) or "").strip().splitlines()[0]
        assert help_line == doc, name


def test_the_chosen_command_is_found_past_global_options() -> None:
    assert chosen_command(["--config", "run", "doctor", "--json"]) == "doctor"
    assert chosen_command(["--log-level", "debug", "config", "check"]) == "config"
    assert chosen_command(["--version"]) is None


SAMPLES = {"config": ["check"], "wakeword": ["list"], "ask": ["hello"]}


def test_every_subcommand_still_registers() -> None:
    for only in (None, *COMMANDS):
        parser = build_parser(only)
        for name in COMMANDS if only is None else [only]:
            args = parser.parse_args([name, *SAMPLES.get(name, [])])
            assert callable(args.handler), name


def _modules_after(call: str) -> set[str]:
    """The modules a fresh interpreter holds after `call` (Python source using device.cli)."""
    code = f"import sys\nimport device.cli as cli\n{call}\nprint('MODULES', *sorted(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("MODULES "))
    return set(line.split()[1:])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_config_check_imports_neither_the_live_sdk_nor_the_audio_or_wake_word_stacks(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'state_dir = "{tmp_path}"\n')
    assert _heavy(_modules_after(f"cli.main(['--config', {str(cfg)!r}, 'config', 'check'])")) == []
    # The same probe does see the SDK where a chosen command needs it.
    assert "google.genai" in _modules_after("cli.build_parser('ask')")
