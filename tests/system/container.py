"""A Pi-like Debian host with real systemd and sshd, in a systemd-nspawn container.

API (see tests/system/conftest.py for the fixtures built on it):

    root = ensure_rootfs("bookworm")          # debootstrap once, cached under
                                              #   ~/.cache/livespeaker-tests/rootfs-<suite>-<hash>
    with booted(tmp_path, binds=[...]) as c:  # a fresh copy of that rootfs, booted
        c.run("systemctl is-system-running --wait")     # over ssh as root; CompletedProcess[str]
        c.run("false", check=False).returncode           # check=True raises CommandFailed
        c.write("/etc/foo.conf", "x=1\\n")                # files written straight into the live rootfs
        c.ssh_argv()                          # ["ssh", "-i", KEY, "-p", PORT, "-o", ..., "root@127.0.0.1"]
        c.ssh_options()                       # the same without the destination (for scp/rsync -e)
        c.host, c.ssh_port, c.ssh_key, c.user # to give a provisioning script a real SSH target
        c.root                                # host path of the container's /
        c.stop()                              # orderly poweroff, then SIGKILL by pid; idempotent

Facts worth knowing:
- The container shares the host's network namespace (no --private-network): it reaches the host's
  loopback services (a simulator on 127.0.0.1:PORT) and the internet through the host; its sshd
  listens on 127.0.0.1:<free port> instead of 22.
- The rootfs has: systemd (PID 1), dbus, openssh-server, python3 + venv, sudo, libportaudio2 and the
  ALSA PulseAudio plugin, python3-systemd, ca-certificates, iproute2, procps. A user `pi` exists with
  passwordless sudo and the same test key as root (like a fresh Raspberry Pi OS).
- Each boot gets its own copy (`cp -a --reflink=auto`), so tests never see each other's changes.
- The host has no systemd as PID 1, hence `--register=no --keep-unit` (machinectl does not work).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

CACHE = Path(os.environ.get("LIVESPEAKER_TEST_CACHE", Path.home() / ".cache" / "livespeaker-tests"))
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def apt_mirror(sources: Sequence[Path] = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` or a one-line `deb URL SUITE`).

    Only the main archive counts (not -security or -updates). $LIVESPEAKER_DEBIAN_MIRROR wins.
    """
    if env := os.environ.get("LIVESPEAKER_DEBIAN_MIRROR"):
        return env
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            files += sorted(src.glob("*.sources")) + sorted(src.glob("*.list"))
        elif src.is_file():
            files.append(src)
    for f in files:
        text = f.read_text(errors="replace")
        stanzas = text.split("\n\n") if f.suffix == ".sources" else text.splitlines()
        for stanza in stanzas:
            if f.suffix == ".sources":
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                    if not k.startswith("#") and v
                )
                types, uris = fields.get("types", "").split(), fields.get("uris", "").split()
                suites = fields.get("suites", "").split()
            else:
                words = re.sub(r"\[[^]]*\]", "", stanza.split("#")[0]).split()
                types, uris, suites = words[:1], words[1:2], words[2:3]
            if "deb" in types and uris and any("-" not in s for s in suites):
                return uris[0].rstrip("/")
    raise LookupError(
        f"no Debian archive in {', '.join(map(str, sources))}: set LIVESPEAKER_DEBIAN_MIRROR"
    )


PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "python3-systemd",
    "libportaudio2",
    "libasound2-plugins",
    "ca-certificates",
    "iproute2",
    "procps",
    "sudo",
)
"""What a fresh Pi OS (Lite) image roughly has, plus what the daemon needs at run time."""

SSH_OPTIONS: tuple[str, ...] = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "ServerAliveInterval=5",
)


class CommandFailed(subprocess.CalledProcessError):
    """A command in the container exited non-zero; str() includes its output."""

    def __str__(self) -> str:
        return (
            f"{self.cmd!r} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def _locked(path: Path) -> contextlib.AbstractContextManager[object]:
    """An exclusive flock on path (other pytest processes building the same rootfs wait)."""

    @contextlib.contextmanager
    def lock() -> Iterator[object]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    return lock()


def native_arch() -> str:
    """This machine's Debian architecture (amd64, arm64, ...)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def rootfs_path(
    suite: str = "bookworm", packages: Sequence[str] = PACKAGES, arch: str | None = None
) -> Path:
    """Where the cached rootfs for this suite, package set and architecture lives."""
    key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:8]
    foreign = f"-{arch}" if arch and arch != native_arch() else ""
    return CACHE / f"rootfs-{suite}{foreign}-{key}"


def enable_emulation(arch: str) -> None:
    """Let this kernel run `arch` binaries: qemu-user-static through binfmt_misc with flags POCF
    (F: the interpreter works inside containers; C: setuid programs such as sudo keep their
    credentials, which Debian's default PF registration loses). Raises with what to install."""
    qemu = {"arm64": "aarch64", "armhf": "arm"}.get(arch, arch)
    misc = Path("/proc/sys/fs/binfmt_misc")
    entry = misc / f"qemu-{qemu}"
    if entry.exists() and _binfmt_flags(entry) >= set("POCF"):
        return
    if not Path("/usr/sbin/update-binfmts").exists():
        raise RuntimeError(
            f"running {arch} needs Debian's qemu-user-static and binfmt-support "
            "(bash deploy/dev.sh setup installs them)"
        )
    if not (misc / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], check=True)
    if not entry.exists():
        subprocess.run(["update-binfmts", "--enable", f"qemu-{qemu}"], check=True)
    fields = dict(line.split(" ", 1) for line in entry.read_text().splitlines() if " " in line)
    entry.write_text("-1")  # unregister, then register the same interpreter with POCF
    (misc / "register").write_text(
        f":qemu-{qemu}:M:{fields['offset']}:{_hex_escape(fields['magic'])}:"
        f"{_hex_escape(fields['mask'])}:{fields['interpreter']}:POCF"
    )
    if not (entry.exists() and _binfmt_flags(entry) >= set("POCF")):
        raise RuntimeError(f"could not register qemu-{qemu} with binfmt_misc flags POCF")


def _binfmt_flags(entry: Path) -> set[str]:
    text = entry.read_text()
    if not text.startswith("enabled"):
        return set()
    return next(
        (set(ln.split(":", 1)[1].strip()) for ln in text.splitlines() if ln.startswith("flags:")),
        set(),
    )


def _hex_escape(hexdigits: str) -> str:
    """binfmt_misc's magic/mask syntax: each byte as \\xHH."""
    return "".join(f"\\x{hexdigits[i : i + 2]}" for i in range(0, len(hexdigits), 2))


def ensure_rootfs(
    suite: str = "bookworm", packages: Sequence[str] = PACKAGES, arch: str | None = None
) -> Path:
    """Build (once, ~80-120 s; a foreign arch under emulation ~5-8 min) or reuse the cached
    Debian rootfs; returns its path. Never modify it."""
    final = rootfs_path(suite, packages, arch)
    foreign = arch is not None and arch != native_arch()
    if foreign:
        assert arch is not None
        enable_emulation(arch)
    with _locked(final.with_suffix(".lock")):
        if (final / ".complete").exists():
            return final
        tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("debootstrap %s into %s", suite, tmp)
        subprocess.run(
            [
                "debootstrap",
                *([f"--arch={arch}"] if foreign else []),
                "--variant=minbase",
                f"--include={','.join(packages)}",
                suite,
                str(tmp),
                apt_mirror(),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        _customise(tmp)
        (tmp / ".complete").write_text(f"{suite} {' '.join(packages)}\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final


def _customise(root: Path) -> None:
    """Things every boot wants: a `pi` sudoer, quiet sshd, no getty on the console."""
    subprocess.run(
        ["chroot", str(root), "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "pi"], check=True
    )
    (root / "etc/sudoers.d/010_pi-nopasswd").write_text("pi ALL=(ALL) NOPASSWD: ALL\n")
    (root / "etc/sudoers.d/010_pi-nopasswd").chmod(0o440)
    (root / "etc/hostname").write_text("raspberrypi\n")
    # The console belongs to the test log; a getty there only adds noise.
    for unit in ("console-getty.service", "getty@tty1.service"):
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    subprocess.run(["rm", "-rf", str(root / "var/cache/apt/archives")], check=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def test_key() -> Path:
    """The test-only ssh key pair (private key path; public key next to it with .pub)."""
    key = CACHE / "ssh" / "id_ed25519"
    with _locked(key.with_suffix(".lock")):
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "livespeaker-tests",
                    "-f",
                    str(key),
                ],
                check=True,
            )
    return key


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Container:
    """One booted container: run commands over ssh, write files, stop it. Use `booted()`."""

    host = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        *,
        binds: Sequence[tuple[str, str]] = (),
        ro_binds: Sequence[tuple[str, str]] = (),
        user: str = "root",
    ) -> None:
        self.root = root
        self.user = user
        self.ssh_key = test_key()
        self.ssh_port = free_port()
        self.name = f"ls-{uuid.uuid4().hex[:8]}"
        self.log_path = root.parent / f"{self.name}.console.log"
        self._binds = list(binds)
        self._ro_binds = list(ro_binds)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The systemd-nspawn process id (None before start / after stop)."""
        return self._proc.pid if self._proc else None

    def _prepare(self) -> None:
        pub = self.ssh_key.with_suffix(".pub").read_text()
        for home, owner in ((self.root / "root", "root"), (self.root / "home/pi", "pi")):
            ssh = home / ".ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            (ssh / "authorized_keys").write_text(pub)
            (ssh / "authorized_keys").chmod(0o600)
            if owner == "pi":
                uid = gid = _pi_ids(self.root)
                for p in (ssh, ssh / "authorized_keys"):
                    os.chown(p, uid, gid)
        self.write(
            "/etc/ssh/sshd_config.d/10-test.conf",
            f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nUseDNS no\nPasswordAuthentication no\n",
        )

    def start(self, timeout: float = 90.0) -> None:
        """Boot (systemd as PID 1) and wait until ssh answers."""
        self._prepare()
        argv = [
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--quiet",
            f"--machine={self.name}",
            "--console=read-only",
            "-D",
            str(self.root),
        ]
        argv += [f"--bind={h}:{c}" for h, c in self._binds]
        argv += [f"--bind-ro={h}:{c}" for h, c in self._ro_binds]
        argv.append("--boot")
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited {self._proc.returncode}: {self.console()}"
                )
            r = self.run("true", check=False, timeout=10)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"no ssh on 127.0.0.1:{self.ssh_port}: {r.stderr}\n{self.console()}"
                )
            time.sleep(0.5)

    def console(self) -> str:
        """What the container printed on its console (boot messages) so far."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def ssh_options(self) -> list[str]:
        """ssh options (key, port, no host key checks) without the destination."""
        return ["-i", str(self.ssh_key), "-p", str(self.ssh_port), *SSH_OPTIONS]

    def ssh_argv(self, user: str | None = None) -> list[str]:
        """A complete `ssh ... user@127.0.0.1` prefix; append a command string."""
        return ["ssh", *self.ssh_options(), f"{user or self.user}@{self.host}"]

    def run(
        self,
        cmd: str,
        *,
        check: bool = True,
        timeout: float = 120.0,
        user: str | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command line in the container over ssh."""
        try:
            r = subprocess.run(
                [*self.ssh_argv(user), cmd],
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{cmd!r} did not finish within {timeout} s") from exc
        if check and r.returncode != 0:
            raise CommandFailed(r.returncode, cmd, r.stdout, r.stderr)
        return r

    def wait_booted(self, timeout: float = 60.0) -> str:
        """Wait for boot to finish; returns `running` or `degraded`."""
        r = self.run("systemctl is-system-running --wait", check=False, timeout=timeout)
        return r.stdout.strip()

    def path(self, path: str) -> Path:
        """Host path of an absolute path inside the container."""
        return self.root / path.lstrip("/")

    def write(self, path: str, text: str, mode: int = 0o644) -> Path:
        """Write a file into the container (parents created, owned by root)."""
        p = self.path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
        return p

    def copy_in(self, src: Path, path: str) -> Path:
        """Copy a host file into the container."""
        p = self.path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, p)
        return p

    def stop(self, timeout: float = 30.0) -> None:
        """Orderly shutdown (SIGTERM to nspawn = poweroff), SIGKILL after timeout. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        inside = _descendants(proc.pid)  # the container's init and everything under it
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "container %s did not power off in %s s; killing pid %s",
                self.name,
                timeout,
                proc.pid,
            )
            proc.kill()
            proc.wait(10)
            # An emulated container (qemu-user) outlives a killed nspawn: end what was inside
            # (its init dying ends its whole PID namespace). The start time guards against a
            # PID reused meanwhile.
            for pid, started in inside:
                if _started(pid) == started:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (field 3 on), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _started(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields else None  # field 22: start time in clock ticks since boot


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below `pid`, with its start time."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p[0], [])
    return out


def _pi_ids(root: Path) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "pi":
            return int(parts[2])
    raise LookupError("no user pi in the rootfs")


def discard(path: Path) -> None:
    """Delete a used rootfs copy in the background (a venv-sized tree takes tens of seconds)."""
    trash = path.with_name(f".trash-{uuid.uuid4().hex[:8]}")
    path.rename(trash)
    # Through a shell that exits at once: rm is orphaned, nothing here has to reap it.
    subprocess.run(
        [
            "sh",
            "-c",
            'nice rm -rf --one-file-system "$1" </dev/null >/dev/null 2>&1 &',
            "sh",
            str(trash),
        ],
        check=True,
        timeout=30,
    )


def clone_rootfs(base: Path, dest: Path) -> Path:
    """A private copy of a cached rootfs (reflinked where the filesystem can)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(dest)], check=True)
    return dest


@contextlib.contextmanager
def booted(
    workdir: Path,
    *,
    suite: str = "bookworm",
    arch: str | None = None,
    binds: Sequence[tuple[str, str]] = (),
    ro_binds: Sequence[tuple[str, str]] = (),
    keep: bool = False,
    boot_timeout: float = 90.0,
) -> Iterator[Container]:
    """Boot a fresh copy of the cached rootfs under workdir; stop and delete it afterwards.

    arch: a foreign Debian architecture (e.g. "arm64") runs emulated. binds/ro_binds are
    (host path, container path) pairs. keep=True leaves the copy on disk.
    """
    root = clone_rootfs(ensure_rootfs(suite, arch=arch), workdir / "rootfs")
    emulated = arch is not None and arch != native_arch()
    if emulated and arch == "arm64":
        _pi_cpuinfo(root)
    c = Container(root, binds=binds, ro_binds=ro_binds)
    try:
        c.start(timeout=boot_timeout)
        yield c
    finally:
        c.stop(timeout=5.0 if emulated else 30.0)  # an emulated poweroff takes minutes
        if not keep:
            discard(root)


PI_ZERO_2_W_CPUINFO = (
    "".join(
        f"processor\t: {n}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd03\n"
        "CPU revision\t: 4\n\n"
        for n in range(4)
    )
    + "Revision\t: 902120\nModel\t\t: Raspberry Pi Zero 2 W Rev 1.0\n"
)
"""/proc/cpuinfo of a Pi Zero 2 W: four Cortex-A53 cores."""


def _pi_cpuinfo(root: Path) -> None:
    """Give an emulated arm64 container a Pi's /proc/cpuinfo, bound over the host's at boot.

    qemu-user 7.2 (Debian bookworm) passes the host's x86 /proc/cpuinfo through (8.1 and later
    emulate it); LiteRT's XNNPACK reads it to pick its ARM kernels and crashes on x86 text
    (SIGSEGV in allocate_tensors). A real Pi never shows that, so the container shows a Pi's.
    """
    share = root / "usr/local/share/emulated-pi"
    share.mkdir(parents=True, exist_ok=True)
    (share / "cpuinfo").write_text(PI_ZERO_2_W_CPUINFO)
    unit = root / "etc/systemd/system/emulated-pi-cpuinfo.service"
    unit.write_text(
        "[Unit]\nDescription=A Raspberry Pi's /proc/cpuinfo (qemu-user shows the host's)\n"
        "DefaultDependencies=no\nBefore=sysinit.target\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "ExecStart=/bin/mount --bind /usr/local/share/emulated-pi/cpuinfo /proc/cpuinfo\n"
    )
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).unlink(missing_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")


def quote(*words: str) -> str:
    """shlex-join for building command lines passed to Container.run."""
    return shlex.join(words)
