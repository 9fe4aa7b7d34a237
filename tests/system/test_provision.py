"""deploy/provision.sh over real SSH into a Pi-like container with real systemd.

One container goes through a Pi's life: a wrong host key and an unsupported OS are refused; a
fresh install comes up ready with the key root-only and never in any process's argv or
environment; a second run changes nothing; a new key is rotated in; a config edited on the Pi is kept; an upgrade to a changed build switches releases; a
deliberately broken build is rolled back (exit 4, journal tail shown); --uninstall leaves no unit.
A second test does a fresh install on Debian trixie (Python 3.13) with the key typed at a prompt.
The daemon is the real one under the real unit, talking to the Live API simulator on loopback
with the real virtual sound card, on mock GPIO pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import CertFiles
from device.simulator.server import LiveSimulator
from tests.system.conftest import BootContainer
from tests.system.container import CACHE, Container, booted

pytestmark = [pytest.mark.system, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
PIP_CACHE = CACHE / "pip"
"""pip's download cache, shared by the containers (what a Pi would download from PyPI)."""
PI = "pi"  # provision as the sudoer, like on a fresh Raspberry Pi OS
ROTATED_KEY_PREFIX = "Rotated"


# --- watching every process's argv and environment -------------------------------------------


class ProcessWatcher(threading.Thread):
    """Scans /proc/*/cmdline and /proc/*/environ until stopped; remembers any that hold `secret`.

    The container's processes live in a child PID namespace, so the host's /proc shows them too:
    one scan covers the operator's machine and the Pi.
    """

    def __init__(self, secret: str) -> None:
        super().__init__(name="process-watcher", daemon=True)
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.seen_remote_agent = False
        self.scans = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._scan()
            self.scans += 1
            self._stop_event.wait(0.01)

    def _scan(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            for part in ("cmdline", "environ"):
                try:
                    with open(f"/proc/{entry.name}/{part}", "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if self.secret in data:
                    self.leaks.append(f"pid {entry.name} {part}: {data[:200]!r}")
                if part == "cmdline" and b"provision-agent.sh\0install" in data:
                    self.seen_remote_agent = True

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


# --- the operator's side ---------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    out: str


@dataclass
class Operator:
    """Runs deploy/provision.sh from a checkout against the container, like a user would."""

    container: Container
    known_hosts: Path
    config: Path
    key_file: Path

    async def provision(self, source: Path, *extra: str, typed_key: str | None = None) -> Run:
        """Run provision.sh; with typed_key, on a terminal where that key is typed at the prompt."""
        argv = [
            "bash",
            str(source / "deploy" / "provision.sh"),
            "--source",
            str(source),
            "-p",
            str(self.container.ssh_port),
            "-i",
            str(self.container.ssh_key),
            "--known-hosts",
            str(self.known_hosts),
            *extra,
            f"{PI}@{self.container.host}",
        ]
        if typed_key is not None:  # script(1) gives it a pseudo-terminal as /dev/tty
            argv = ["script", "-qefc", shlex.join(argv), "/dev/null"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE if typed_key is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out = await asyncio.wait_for(self._converse(proc, typed_key), 900)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode(errors="replace").replace("\r\n", "\n")
        print(f"$ {' '.join(argv)}\n{text}")  # shown by pytest when a test fails
        assert proc.returncode is not None
        return Run(proc.returncode, text)

    @staticmethod
    async def _converse(proc: asyncio.subprocess.Process, typed_key: str | None) -> bytes:
        """Collect the output; type the key once the (hidden) prompt is shown."""
        assert proc.stdout is not None
        out = b""
        while chunk := await proc.stdout.read(4096):
            out += chunk
            if typed_key is not None and b"(input hidden): " in out:
                assert proc.stdin is not None
                proc.stdin.write(typed_key.encode() + b"\n")
                await proc.stdin.drain()
                typed_key = None
        await proc.wait()
        return out

    async def install(self, source: Path, *extra: str) -> Run:
        return await self.provision(
            source, "--config", str(self.config), "--api-key-file", str(self.key_file), *extra
        )


def copy_checkout(dest: Path) -> Path:
    """A copy of this checkout (what an operator would have), without caches and venvs."""
    shutil.copytree(
        REPO,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", ".*_cache", "bench-results", "dist", "*.egg-info"
        ),
    )
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def known_hosts_for(c: Container, path: Path) -> Path:
    """A known_hosts line with the container's real host key (what the operator verified)."""
    kind, blob, *_ = c.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    path.write_text(f"[{c.host}]:{c.ssh_port} {kind} {blob}\n")
    return path


# --- the Pi's surroundings (network trust, sound card, simulator CA) ---------------------------


def attach_sound_card(card: VirtualSoundCard, sock_dir: Path) -> str:
    """An extra, cookie-less socket of the host's virtual sound card for the container's daemon.

    Stands in for the Pi's ALSA card: the container's ALSA `default` is routed to it.
    Returns the socket path as the container sees it.
    """
    sock_dir.mkdir(mode=0o755, exist_ok=True)
    sock_dir.chmod(0o755)
    subprocess.run(
        [
            "pactl",
            "load-module",
            "module-native-protocol-unix",
            "auth-anonymous=1",
            f"socket={sock_dir / 'native'}",
        ],
        env=card.env,
        check=True,
        capture_output=True,
    )
    return "/run/host-sound/native"


def prepare_pi(c: Container, sim_ca: Path, pulse_socket: str) -> None:
    """What a real Pi has before provisioning: network trust, its sound card, a resolvable name."""
    # Trust what this host trusts (a TLS-intercepting egress proxy, if any), so pip reaches PyPI.
    c.copy_in(Path("/etc/ssl/certs/ca-certificates.crt"), "/etc/ssl/certs/ca-certificates.crt")
    c.write("/etc/pip.conf", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    hosts = c.path("/etc/hosts")  # sudo resolves the hostname; minbase ships no /etc/hosts
    old = hosts.read_text() if hosts.exists() else "127.0.0.1 localhost\n"
    hosts.write_text(old + "127.0.1.1 raspberrypi\n")
    # The simulator's CA (the config's live.ca_file) and the sound card (ALSA default -> pulse).
    c.copy_in(sim_ca, "/usr/local/share/livespeaker-test/sim-ca.pem")
    c.write("/etc/asound.conf", "pcm.!default pulse\nctl.!default pulse\n")
    c.write(
        "/etc/systemd/system/livespeaker.service.d/50-test-sound.conf",
        f"[Service]\nEnvironment=PULSE_SERVER=unix:{pulse_socket}\n",
    )


@pytest.fixture
async def sim_with_key(tls_certs: CertFiles) -> AsyncIterator[tuple[LiveSimulator, str]]:
    key = "AIzaTest" + secrets.token_hex(16)
    sim = LiveSimulator(
        tls_certs,
        api_keys=[key, ROTATED_KEY_PREFIX + key],
        realtime_factor=20.0,
        hold_turn_complete=False,
    )
    await sim.start()
    try:
        yield sim, key
    finally:
        await sim.stop()


# --- the test --------------------------------------------------------------------------------


def svc(c: Container, prop: str) -> str:
    return c.run(f"systemctl show -p {prop} --value livespeaker.service").stdout.strip()


def release_of(c: Container) -> str:
    return c.run("readlink /opt/livespeaker/venv").stdout.strip().removeprefix("releases/")


def version_of(c: Container) -> str:
    return c.run("/opt/livespeaker/venv/bin/livespeaker --version").stdout.strip()


def exists(c: Container, path: str) -> bool:
    return c.run(f"test -e {path}", check=False).returncode == 0


@dataclass
class Pi:
    """The provisioned container, the operator and the secret they share."""

    c: Container
    op: Operator
    api_key: str
    v1: Path
    tmp: Path


def setup_pi(
    boot: Callable[[list[tuple[str, str]]], Container],
    sim: LiveSimulator,
    api_key: str,
    card: VirtualSoundCard,
    tmp: Path,
) -> Pi:
    """Boot a Pi-like container; give the operator a config, the key and a checkout."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    sock_dir = tmp / "host-sound"
    pulse_socket = attach_sound_card(card, sock_dir)
    c = boot([(str(PIP_CACHE), "/root/.cache/pip"), (str(sock_dir), "/run/host-sound")])
    prepare_pi(c, sim.certs.ca, pulse_socket)
    c.wait_booted()
    config = tmp / "config.toml"
    config.write_text(
        f'[live]\nbase_url = "{sim.base_url}"\n'
        'ca_file = "/usr/local/share/livespeaker-test/sim-ca.pem"\n'
        '[gpio]\npin_factory = "mock"\n'
    )
    key_file = tmp / "api-key"
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o600)
    op = Operator(c, known_hosts_for(c, tmp / "known_hosts"), config, key_file)
    # Someone else's host key, as if the address led to another machine.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "other")], check=True
    )
    (tmp / "wrong_hosts").write_text(f"[{c.host}]:{c.ssh_port} {(tmp / 'other.pub').read_text()}")
    return Pi(c, op, api_key, copy_checkout(tmp / "v1"), tmp)


@pytest.fixture
def pi(
    boot_container: BootContainer,
    sim_with_key: tuple[LiveSimulator, str],
    sound_card: VirtualSoundCard,
    tmp_path: Path,
) -> Pi:
    """A fresh Debian bookworm (Raspberry Pi OS Bookworm, Python 3.11) container, ready to provision."""
    sim, api_key = sim_with_key
    return setup_pi(lambda binds: boot_container(binds=binds), sim, api_key, sound_card, tmp_path)


@pytest.fixture
def pi_trixie(
    sim_with_key: tuple[LiveSimulator, str], sound_card: VirtualSoundCard, tmp_path: Path
) -> Iterator[Pi]:
    """The same on Debian trixie (Raspberry Pi OS Trixie, Python 3.13)."""
    sim, api_key = sim_with_key
    with contextlib.ExitStack() as stack:

        def boot(binds: list[tuple[str, str]]) -> Container:
            return stack.enter_context(booted(tmp_path / "c", suite="trixie", binds=binds))

        yield setup_pi(boot, sim, api_key, sound_card, tmp_path)


async def refuses_unknown_host_key(pi: Pi) -> None:
    wrong = Operator(pi.c, pi.tmp / "wrong_hosts", pi.op.config, pi.op.key_file)
    run = await wrong.install(pi.v1)
    assert run.rc == 3, run.out
    assert "Host key verification failed" in run.out
    assert not exists(pi.c, "/opt/livespeaker")


async def fresh_install(pi: Pi, *, typed: bool = False) -> None:
    c = pi.c
    watcher = ProcessWatcher(pi.api_key)
    watcher.start()
    try:
        if typed:  # no --api-key-file: the operator types the key at the prompt
            run = await pi.op.provision(pi.v1, "--config", str(pi.op.config), typed_key=pi.api_key)
            assert "(input hidden)" in run.out
        else:
            run = await pi.op.install(pi.v1)
    finally:
        watcher.stop()
    assert run.rc == 0, run.out
    assert watcher.scans > 100 and watcher.seen_remote_agent, "the watcher missed the Pi side"
    assert watcher.leaks == []
    assert pi.api_key not in run.out
    assert svc(c, "ActiveState") == "active" and svc(c, "SubState") == "running"
    assert svc(c, "Type") == "notify"
    assert c.run("stat -c '%U:%G %a' /etc/livespeaker/api-key").stdout.strip() == "root:root 600"
    assert c.run("cat /etc/livespeaker/api-key").stdout.strip() == pi.api_key
    assert pi.api_key not in c.run("journalctl --no-pager -o cat").stdout
    assert "doctor    passed" in run.out


async def second_run_changes_nothing(pi: Pi) -> None:
    invocation = svc(pi.c, "InvocationID")
    run = await pi.op.install(pi.v1)
    assert run.rc == 0, run.out
    assert "NO CHANGES" in run.out
    assert svc(pi.c, "InvocationID") == invocation, "the daemon was restarted"


async def refuses_unsupported_os(pi: Pi) -> None:
    release = pi.c.path("/usr/lib/os-release")  # /etc/os-release links here
    original = release.read_text()
    release.write_text(original.replace("bookworm", "bullseye").replace("12", "11"))
    try:
        run = await pi.op.install(pi.v1)
    finally:
        release.write_text(original)
    assert run.rc == 3, run.out
    assert "unsupported OS" in run.out
    assert not exists(pi.c, "/opt/livespeaker")


async def rotates_the_key(pi: Pi) -> None:
    """A new key replaces the old one and the daemon is restarted to load the new credential."""
    invocation = svc(pi.c, "InvocationID")
    pi.api_key = ROTATED_KEY_PREFIX + pi.api_key
    pi.op.key_file.write_text(pi.api_key + "\n")
    run = await pi.op.install(pi.v1)
    assert run.rc == 0, run.out
    assert "API key stored" in run.out and "doctor    passed" in run.out
    assert pi.c.run("cat /etc/livespeaker/api-key").stdout.strip() == pi.api_key
    assert svc(pi.c, "InvocationID") != invocation
    assert pi.api_key not in run.out


async def keeps_config_edited_on_the_pi(pi: Pi) -> None:
    pi.c.run("echo '# tuned on the Pi' >> /etc/livespeaker/config.toml")
    pi.op.config.write_text(pi.op.config.read_text() + "[audio]\nvolume = 55\n")
    run = await pi.op.install(pi.v1)
    assert run.rc == 0, run.out
    assert "KEPT" in run.out and "NO CHANGES" in run.out
    assert "tuned on the Pi" in pi.c.run("cat /etc/livespeaker/config.toml").stdout


async def upgrades(pi: Pi) -> str:
    c, first, invocation = pi.c, release_of(pi.c), svc(pi.c, "InvocationID")
    v2 = copy_checkout(pi.tmp / "v2")
    edit(v2 / "device" / "__init__.py", '__version__ = "', '__version__ = "9.9.9+upgrade')
    run = await pi.op.install(v2, "--force-config")
    assert run.rc == 0, run.out
    second = release_of(c)
    assert second != first
    assert c.run("readlink /opt/livespeaker/previous").stdout.strip() == f"releases/{first}"
    assert "volume = 55" in c.run("cat /etc/livespeaker/config.toml").stdout
    assert svc(c, "ActiveState") == "active"
    assert svc(c, "InvocationID") != invocation
    assert "9.9.9+upgrade" in version_of(c)
    return second


async def rolls_back_a_broken_build(pi: Pi, good: str) -> None:
    v3 = copy_checkout(pi.tmp / "v3")
    edit(v3 / "device" / "__init__.py", '__version__ = "', '__version__ = "9.9.10+broken')
    # Starts (--version, config check pass) but the daemon dies before READY=1.
    edit(
        v3 / "device" / "cli.py",
        "    args = parser.parse_args(argv)\n",
        "    args = parser.parse_args(argv)\n"
        '    if args.command == "run":\n'
        '        raise SystemExit("deliberately broken build")\n',
    )
    run = await pi.op.install(v3)
    assert run.rc == 4, run.out
    assert "ROLLBACK to release" in run.out
    assert re.search(r"journal of livespeaker.service.*deliberately broken build", run.out, re.S)
    assert release_of(pi.c) == good
    assert svc(pi.c, "ActiveState") == "active"
    assert "9.9.9+upgrade" in version_of(pi.c)
    assert "9.9.10" not in pi.c.run("ls /opt/livespeaker/releases").stdout


async def uninstalls(pi: Pi) -> None:
    c = pi.c
    run = await pi.op.provision(pi.v1, "--uninstall")
    assert run.rc == 0, run.out
    assert not exists(c, "/etc/systemd/system/livespeaker.service")
    assert "livespeaker.service" not in c.run("systemctl list-unit-files").stdout
    assert c.run("systemctl is-active livespeaker.service", check=False).stdout.strip() != "active"
    assert not exists(c, "/opt/livespeaker")
    assert exists(c, "/etc/livespeaker/config.toml") and exists(c, "/etc/livespeaker/api-key")
    run = await pi.op.provision(pi.v1, "--uninstall", "--purge")
    assert run.rc == 0, run.out
    assert not exists(c, "/etc/livespeaker")


async def test_provision_lifecycle(pi: Pi) -> None:
    """One Pi's life, in order (each step starts from the state the previous one left)."""
    await refuses_unknown_host_key(pi)
    await refuses_unsupported_os(pi)
    await fresh_install(pi)
    await second_run_changes_nothing(pi)
    await rotates_the_key(pi)
    await keeps_config_edited_on_the_pi(pi)
    good = await upgrades(pi)
    await rolls_back_a_broken_build(pi, good)
    await uninstalls(pi)


async def test_provision_trixie_python313(pi_trixie: Pi) -> None:
    """The newer OS: fresh install (key typed at the prompt) healthy, no-change rerun, uninstall."""
    pi = pi_trixie
    assert "3.13" in pi.c.run("python3 -V").stdout
    await fresh_install(pi, typed=True)
    await second_run_changes_nothing(pi)
    await uninstalls(pi)
