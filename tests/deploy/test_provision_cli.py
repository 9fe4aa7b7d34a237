"""deploy/provision.sh without a Pi: lint and argument handling (the Pi side: tests/system)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPTS = [DEPLOY / "provision.sh", DEPLOY / "provision-agent.sh"]


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / "provision.sh"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_scripts_are_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_help_lists_every_option() -> None:
    r = provision("--help")
    assert r.returncode == 0
    for option in (
        "--port",
        "--identity",
        "--known-hosts",
        "--config",
        "--force-config",
        "--api-key-file",
        "--uninstall",
        "--purge",
        "--enroll",
        "--takes",
    ):
        assert option in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "USER@HOST missing"),
        (("raspberrypi",), "must be USER@HOST"),
        (("--purge", "pi@host"), "--purge only goes with --uninstall"),
        (("--port", "ssh", "pi@host"), "--port needs a number"),
        (("--api-key-file", "/nonexistent/key", "pi@host"), "cannot read /nonexistent/key"),
        (("--bogus", "pi@host"), "unknown option --bogus"),
        (("a@b", "c@d"), "only one USER@HOST"),
        (("--enroll", "Anna", "pi@host"), "voice name 'Anna'"),
        (("--enroll", "anna", "--takes", "3", "pi@host"), "at least 4"),
        (("--enroll", "anna", "--uninstall", "pi@host"), "do not go together"),
    ],
)
def test_usage_errors_exit_2_before_touching_anything(args: tuple[str, ...], message: str) -> None:
    r = provision(*args)
    assert r.returncode == 2
    assert message in r.stderr


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("")
    r = provision("--api-key-file", str(key), "pi@host")
    assert r.returncode == 2 and "is empty" in r.stderr


def test_agent_without_a_command_shows_usage() -> None:
    r = subprocess.run(
        ["bash", str(DEPLOY / "provision-agent.sh")], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "preflight" in r.stderr and "uninstall" in r.stderr and "enroll NAME" in r.stderr
