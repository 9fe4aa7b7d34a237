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
        "--ssh-config",
        "--build-only",
        "--stage",
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
        (("--enroll", "anna", "a@b", "c@d"), "--enroll takes one USER@HOST"),
        (("--build-only", "/tmp/x", "pi@host"), "--build-only takes no USER@HOST"),
        (("--stage", "/nonexistent", "pi@host"), "--stage: no such directory"),
        (("--ssh-config", "/nonexistent/cfg", "pi@host"), "cannot read /nonexistent/cfg"),
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


def test_several_hosts_build_once_and_end_with_a_summary_per_host(tmp_path: Path) -> None:
    """Two hosts nobody listens for: one build, two runs in parallel, each line prefixed with
    its host, one summary line each, the first failure's exit status (3: unreachable)."""
    import socket

    with socket.socket() as s:  # a port that refuses connections
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host kitchen hall\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 5\n"
    )
    key = tmp_path / "key"
    key.write_text("AIzaNotARealKey\n")
    r = provision(
        "--ssh-config", str(ssh_config), "--api-key-file", str(key), "pi@kitchen", "pi@hall"
    )
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert out.count("==> building from") == 1
    assert "[pi@kitchen] ==> connecting to pi@kitchen" in out
    assert "[pi@hall] ==> connecting to pi@hall" in out
    assert "pi@kitchen                       FAILED: unreachable or unsupported" in out
    assert "pi@hall                          FAILED: unreachable or unsupported" in out
    assert "AIzaNotARealKey" not in out


def test_build_only_writes_the_release_without_ssh(tmp_path: Path) -> None:
    r = provision("--build-only", str(tmp_path / "release"))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "release").iterdir())
    assert "SHA256SUMS" in names and "provision-agent.sh" in names
    assert "requirements.txt" in names and any(n.endswith(".whl") for n in names)
    # Again into the same directory: the earlier build is replaced, not mixed in (the installer
    # takes the one wheel it finds).
    (tmp_path / "release" / "livespeaker-9.9.9-py3-none-any.whl").write_text("stale")
    r = provision("--build-only", str(tmp_path / "release"))
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "release").glob("*.whl"))) == 1
    # A directory that is not a build is left alone.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    r = provision("--build-only", str(tmp_path / "mine"))
    assert r.returncode == 2 and "neither empty nor an earlier build" in r.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
