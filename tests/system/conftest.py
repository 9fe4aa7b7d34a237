"""Fixtures for system tests: a Pi-like Debian container with real systemd and sshd.

def test_x(container: Container) -> None:            # booted, clean copy, ssh ready
    assert container.run("systemctl is-active ssh").stdout.strip() == "active"

def test_y(boot_container: BootContainer) -> None:   # custom bind mounts
    c = boot_container(binds=[(str(host_dir), "/mnt/x")])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.system.container import Container, booted, ensure_rootfs

BootContainer = Callable[..., Container]


@pytest.fixture(scope="session")
def rootfs() -> Path:
    """The cached Debian bookworm rootfs (built by debootstrap on first use, ~2 min)."""
    return ensure_rootfs("bookworm")


@pytest.fixture
def boot_container(rootfs: Path, tmp_path: Path) -> Iterator[BootContainer]:
    """boot_container(binds=[(host, guest)], ro_binds=[...]) -> a booted Container (stopped at teardown)."""
    with contextlib.ExitStack() as stack:
        count = 0

        def boot(
            binds: Sequence[tuple[str, str]] = (), ro_binds: Sequence[tuple[str, str]] = ()
        ) -> Container:
            nonlocal count
            count += 1
            return stack.enter_context(
                booted(tmp_path / f"c{count}", binds=binds, ro_binds=ro_binds)
            )

        yield boot


@pytest.fixture
def container(boot_container: BootContainer) -> Container:
    """A freshly booted container (its own copy of the rootfs), stopped after the test."""
    return boot_container()
