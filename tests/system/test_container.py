"""The container helper itself: real systemd as PID 1, sshd on loopback, clean copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.container import CommandFailed, Container

pytestmark = pytest.mark.system


def test_boots_systemd_with_ssh_and_a_pi_sudoer(container: Container) -> None:
    assert container.wait_booted() in {"running", "degraded"}
    assert container.run("cat /proc/1/comm").stdout.strip() == "systemd"
    assert container.run("systemctl is-active ssh").stdout.strip() == "active"
    assert container.run("sudo -n id -u", user="pi").stdout.strip() == "0"
    with pytest.raises(CommandFailed) as exc:
        container.run("echo oops >&2; exit 3")
    assert exc.value.returncode == 3 and "oops" in str(exc.value)


def test_changes_stay_in_the_copy(container: Container, rootfs: Path) -> None:
    container.run("touch /etc/dirty")
    assert container.path("/etc/dirty").exists()
    assert not (rootfs / "etc" / "dirty").exists()
