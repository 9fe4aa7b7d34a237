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
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import CertFiles
from device.simulator.server import LiveSimulator
from tests.system.conftest import BootContainer
from tests.system.container import CACHE, Container, booted
from tests.wakeword.corpus import WAKE, Voice, say

pytestmark = [pytest.mark.system, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
EMULATED_CPUINFO = "/usr/local/share/emulated-pi/cpuinfo"
"""Where tests/system/container.py puts a Pi's /proc/cpuinfo in an emulated arm64 container."""
EMULATED_CPU = "cortex-a53"
"""The Pi Zero 2 W's cores (a Pi 3 has the same; a Pi 5 has Cortex-A76)."""
ENROLL_VOICE = Voice("flite", "slt")
ENROLL_TAKES = ((0.95, -1), (1.05, 1), (0.9, 1), (1.1, -1))
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


class RunningProvision:
    """A provision.sh run in progress: its output so far, a way to wait for a line, its end."""

    def __init__(
        self, argv: list[str], proc: asyncio.subprocess.Process, typed_key: str | None
    ) -> None:
        self.argv, self.proc, self._typed_key = argv, proc, typed_key
        self.out = b""
        self._grew = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="provision-output")

    async def _read(self) -> None:
        """Collect the output; type the key once the (hidden) prompt is shown."""
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.out += chunk
            self._grew.set()
            if self._typed_key is not None and b"(input hidden): " in self.out:
                assert self.proc.stdin is not None
                self.proc.stdin.write(self._typed_key.encode() + b"\n")
                await self.proc.stdin.drain()
                self._typed_key = None
        self._grew.set()

    def text(self) -> str:
        return self.out.decode(errors="replace").replace("\r\n", "\n")

    async def wait_for(self, needle: str, within_s: float) -> None:
        """Until the output holds needle (TimeoutError, or AssertionError if the run ended first)."""
        async with asyncio.timeout(within_s):
            while needle.encode() not in self.out:
                assert not self._reader.done(), f"ended before {needle!r}:\n{self.text()}"
                self._grew.clear()
                await self._grew.wait()

    async def finish(self, within_s: float = 900) -> Run:
        try:
            async with asyncio.timeout(within_s):
                await self._reader
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        text = self.text()
        print(f"$ {' '.join(self.argv)}\n{text}")  # shown by pytest when a test fails
        assert self.proc.returncode is not None
        return Run(self.proc.returncode, text)


@dataclass
class Operator:
    """Runs deploy/provision.sh from a checkout against the container, like a user would."""

    container: Container
    known_hosts: Path
    config: Path
    key_file: Path

    async def provision(self, source: Path, *extra: str, typed_key: str | None = None) -> Run:
        """Run provision.sh; with typed_key, on a terminal where that key is typed at the prompt."""
        return await (await self.start(source, *extra, typed_key=typed_key)).finish()

    async def start(
        self, source: Path, *extra: str, typed_key: str | None = None
    ) -> RunningProvision:
        """Start provision.sh in the background; watch its output with wait_for(), then finish()."""
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
        return RunningProvision(argv, proc, typed_key)

    async def start_install(self, source: Path, *extra: str) -> RunningProvision:
        return await self.start(
            source, "--config", str(self.config), "--api-key-file", str(self.key_file), *extra
        )

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
    card: VirtualSoundCard


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
    return Pi(c, op, api_key, copy_checkout(tmp / "v1"), tmp, card)


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


@pytest.fixture
def pi_arm64(
    sim_with_key: tuple[LiveSimulator, str], sound_card: VirtualSoundCard, tmp_path: Path
) -> Iterator[Pi]:
    """Debian bookworm for arm64 (the Pi's architecture), emulated by qemu-user through
    binfmt_misc: systemd, sshd, Python and every wheel run as aarch64 code, about 10x slower."""
    sim, api_key = sim_with_key
    with contextlib.ExitStack() as stack:

        def boot(binds: list[tuple[str, str]]) -> Container:
            return stack.enter_context(
                booted(tmp_path / "c", arch="arm64", binds=binds, boot_timeout=600)
            )

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


async def _lines_starting(
    run: RunningProvision, prefix: str | tuple[str, ...], count: int, within_s: float
) -> None:
    """Until the output has `count` lines starting with prefix (ignoring indentation)."""
    async with asyncio.timeout(within_s):
        while sum(ln.lstrip().startswith(prefix) for ln in run.text().splitlines()) < count:
            assert run.proc.returncode is None, f"ended early:\n{run.text()}"
            await asyncio.sleep(0.05)


async def enrolls_a_voice_over_ssh(pi: Pi) -> None:
    """--enroll runs the guided enrollment on the Pi's own microphone (here: the virtual card the
    container's daemon uses): a silent take is asked again, 4 good takes are kept, the voice is
    saved for the service's user, and the paused service is running again afterwards."""
    before = svc(pi.c, "InvocationID")
    run = await pi.op.start(pi.v1, "--enroll", "alice", "--takes", "4")
    players: list[subprocess.Popen[bytes]] = []
    try:
        # The first tone gets silence (a bad take, asked again), each later one a good take.
        for n, take in enumerate([None, *ENROLL_TAKES], start=1):
            await _lines_starting(run, "take ", n, within_s=180 if n == 1 else 30)
            if take is not None:
                pad = np.zeros(MIC_RATE // 2, np.int16)
                audio = np.concatenate([pad, say(ENROLL_VOICE, WAKE, *take), pad])
                players.append(pi.card.feed_mic(audio, MIC_RATE))
            await _lines_starting(run, ("not used", "ok:"), n, within_s=30)
        done = await run.finish(within_s=120)
    finally:
        for p in players:
            p.wait(30)
    assert done.rc == 0, done.out
    assert "not used" in done.out and "done: 'alice' is enrolled" in done.out
    voice = "/var/lib/livespeaker/voices/alice.npz"
    assert pi.c.run(f"stat -c '%U %a' {voice}").stdout.split() == ["livespeaker", "600"]
    assert (
        pi.c.run("systemctl is-active livespeaker.service", check=False).stdout.strip() == "active"
    )
    assert svc(pi.c, "InvocationID") != before, "the service was not paused for the microphone"
    listed = pi.c.run(
        "runuser -u livespeaker -- /opt/livespeaker/venv/bin/livespeaker "
        "--config /etc/livespeaker/config.toml wakeword list"
    ).stdout
    assert listed.startswith("alice: enrolled"), listed
    # The name is taken: refused with the reason, nothing recorded, the service up again.
    again = await pi.op.provision(pi.v1, "--enroll", "alice")
    assert again.rc == 1, again.out
    assert "already enrolled" in again.out
    assert (
        pi.c.run("systemctl is-active livespeaker.service", check=False).stdout.strip() == "active"
    )


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


def broken_build(
    dest: Path,
    *,
    version: str = "9.9.10+broken",
    when: str = "True",
    why: str = "deliberately broken build",
) -> Path:
    """A checkout whose build installs and passes --version and config check, but whose daemon
    dies before READY=1 (where the Python expression `when` holds)."""
    v3 = copy_checkout(dest)
    edit(v3 / "device" / "__init__.py", '__version__ = "', f'__version__ = "{version}')
    edit(
        v3 / "device" / "cli.py",
        "    args = parser.parse_args(words)\n",
        "    args = parser.parse_args(words)\n"
        f'    if args.command == "run" and {when}:\n'
        f"        raise SystemExit({why!r})\n",
    )
    return v3


async def rolls_back_a_broken_build(pi: Pi, good: str) -> None:
    v3 = broken_build(pi.tmp / "v3")
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
    await enrolls_a_voice_over_ssh(pi)
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


@pytest.mark.emulated
async def test_provision_arm64_emulated(pi_arm64: Pi, speech_wav: Callable[..., Path]) -> None:
    """The locked aarch64 wheels install and run: the same provision.sh brings the daemon to
    READY with a passing doctor, and `livespeaker wakeword test` detects the wake word in a WAV.
    Timings here are emulated (qemu-user), never Pi performance; they are printed, not asserted."""
    pi = pi_arm64
    assert pi.c.run("dpkg --print-architecture").stdout.strip() == "arm64"
    assert pi.c.run("uname -m").stdout.strip() == "aarch64"
    assert "Raspberry Pi Zero 2 W" in pi.c.run("cat /proc/cpuinfo").stdout
    # qemu-user cannot set up systemd credentials (the mount calls fail with EINVAL, exit
    # 243/CREDENTIALS), so the emulated Pi alone gets its test key from the environment; the rest
    # of the unit is the product's. Every unit's processes emulate the Pi Zero 2 W's Cortex-A53
    # (qemu's default "max" CPU offers extensions no Pi has, which LiteRT's kernels then use).
    pi.c.write(
        "/etc/systemd/system.conf.d/50-emulated-cpu.conf",
        f"[Manager]\nDefaultEnvironment=QEMU_CPU={EMULATED_CPU}\n",
    )
    pi.c.write(
        "/etc/systemd/system/livespeaker.service.d/60-emulated.conf",
        "[Service]\nLoadCredential=\nSetCredential=\n"
        f"Environment=GEMINI_API_KEY={pi.api_key}\n"
        # The unit mounts its own /proc (ProtectProc=): the Pi's cpuinfo goes over that one too.
        f"BindReadOnlyPaths={EMULATED_CPUINFO}:/proc/cpuinfo\n",
    )
    pi.c.run("systemctl daemon-reexec")
    started = time.monotonic()
    run = await pi.op.install(pi.v1, "--ready-timeout", "900")
    provisioned_s = time.monotonic() - started
    assert run.rc == 0, run.out
    assert "doctor    passed" in run.out
    assert svc(pi.c, "ActiveState") == "active"
    wheels = pi.c.run(
        "ls /opt/livespeaker/venv/lib/python3*/site-packages/numpy/_core/*.so | head -n1"
    ).stdout.strip()
    assert "aarch64" in wheels, wheels
    wav = speech_wav("hey jarvis, what time is it?")
    pi.c.copy_in(wav, "/root/wake.wav")  # not /tmp: a tmpfs over the rootfs' own
    started = time.monotonic()
    scored = pi.c.run(
        f"QEMU_CPU={EMULATED_CPU} /opt/livespeaker/venv/bin/livespeaker wakeword test /root/wake.wav",
        timeout=900,
    )
    scored_s = time.monotonic() - started
    assert "detected at" in scored.stdout and "not detected" not in scored.stdout, scored.stdout
    print(
        f"emulated arm64 (qemu-user, not Pi performance): provisioned to healthy in "
        f"{provisioned_s:.0f} s; wakeword test {scored_s:.1f} s: {scored.stdout.strip()}"
    )


# --- a connection cut mid-upgrade, and two operators at once ----------------------------------

PROVISION_UNIT = "livespeaker-provision.service"


def provision_ssh_pids(c: Container) -> list[int]:
    """The operator's ssh processes that provision.sh opened to c: its connection master and
    clients (they use a ControlPath; the test's own `Container.run` ssh does not)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        joined = b"\0".join(argv)
        if argv[0] == b"ssh" and b"\0-p\0%d\0" % c.ssh_port in joined and b"ControlPath=" in joined:
            pids.append(int(entry.name))
    return pids


def daemon_releases(c: Container) -> set[str]:
    """The releases the running daemon's files were loaded from (its memory maps)."""
    pid = svc(c, "MainPID")
    if pid in {"", "0"}:
        return set()
    maps = c.run(f"cat /proc/{pid}/maps", check=False).stdout
    return set(re.findall(r"/opt/livespeaker/releases/([^/\s]+)/", maps))


def healthy_on(c: Container, release: str) -> bool:
    """No provisioning in progress, `release` active, and the running daemon is that release."""
    busy = c.run(f"systemctl is-active {PROVISION_UNIT}", check=False).stdout.strip()
    if busy in {"active", "activating", "deactivating", "reloading"}:
        return False
    if c.run("pgrep -f provision-agent.sh", check=False).returncode == 0:
        return False  # a provisioning step still runs (e.g. in an SSH session)
    return (
        release_of(c) == release
        and svc(c, "ActiveState") == "active"
        and daemon_releases(c) == {release}
    )


async def wait_healthy(c: Container, release: str, within_s: float) -> float | None:
    """Seconds until healthy_on(c, release) holds, or None when it did not within within_s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        if await asyncio.to_thread(healthy_on, c, release):
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    return None


async def test_provision_survives_a_cut_connection(pi: Pi) -> None:
    """The Pi-side install runs detached from SSH: cut mid-upgrade, it rolls back by itself; a
    second run while one is in progress is refused (exit 75). Failures are collected so one run
    shows every broken promise."""
    failures: list[str] = []
    c = pi.c
    await fresh_install(pi)
    good = release_of(c)

    # 1. A broken build; the connection is cut once its unvalidated release has been made active.
    running = await pi.op.start_install(broken_build(pi.tmp / "v3"))
    await running.wait_for("changed: active release", 600)
    pids = provision_ssh_pids(c)
    assert pids, "no provisioning ssh process found to cut"
    cut = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    cut_run = await running.finish(120)
    if cut_run.rc != 6 or "lost the connection" not in cut_run.out:
        failures.append(f"the cut run should exit 6 saying the connection was lost: {cut_run.rc}")
    took = await wait_healthy(c, good, 300)
    if took is None:
        failures.append(
            f"not back on a healthy {good} within 300 s of the cut: active "
            f"{release_of(c)}, service {svc(c, 'ActiveState')}, daemon {daemon_releases(c)}"
        )
    else:
        print(f"MEASURED: Pi healthy on {good} again {time.monotonic() - cut:.1f} s after the cut")
    # The next run reports how the cut one ended, and has nothing to change.
    rerun = await pi.op.install(pi.v1)
    if rerun.rc != 0 or not re.search(r"previous provisioning run .*exit 4", rerun.out):
        failures.append(f"the rerun should report the cut run's end (exit 4): rc {rerun.rc}")

    # 2. Two operators at once: the second is refused while the first one's Pi side runs.
    v2 = copy_checkout(pi.tmp / "v2")
    edit(v2 / "device" / "__init__.py", '__version__ = "', '__version__ = "9.9.9+upgrade')
    first = await pi.op.start_install(v2)
    await first.wait_for("-> application release", 600)
    second = await pi.op.install(pi.v1)
    if second.rc != 75 or "another provisioning run is in progress" not in second.out:
        failures.append(f"a concurrent run should be refused with exit 75, got {second.rc}")
    done = await first.finish()
    if done.rc != 0:
        failures.append(f"the first run should complete despite the second: rc {done.rc}")
    if "9.9.9+upgrade" not in version_of(c) or svc(c, "ActiveState") != "active":
        failures.append(f"not on the upgrade after both runs: {version_of(c)}")
    assert not failures, "\n".join(failures)
