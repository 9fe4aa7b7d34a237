"""Install livespeaker and its real unit into a booted container, the way a Pi gets it.

The project is built on the host (`uv build` wheel + `uv export --frozen --no-dev` requirements with
hashes); the container makes /opt/livespeaker/venv (with system site packages for python3-systemd,
as on Raspberry Pi OS) and installs both with pip from PyPI through the host's network, with pip's
cache kept on the host between runs. Audio: the host's virtual sound card (PulseAudio null sinks)
is reached through a bind-mounted socket and ALSA's pulse plugin; GPIO: gpiozero mock pins.
Test-only settings live in a drop-in, never in the unit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from device.simhw.pulse import VirtualSoundCard
from tests.system.container import CACHE, Container

REPO = Path(__file__).resolve().parents[2]
UNIT_PATH = "/etc/systemd/system/livespeaker.service"
DROPIN_DIR = "/etc/systemd/system/livespeaker.service.d"
STAGE = "/mnt/stage"
PULSE_DIR = "/run/livespeaker-pulse"
PIP_CACHE = CACHE / "pip-cache"
HOST_CA = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
"""The host's CA bundle: the container trusts what the host trusts (e.g. an egress proxy's CA)."""


@dataclass(frozen=True)
class Build:
    """What the host hands to the container: the wheel and hashed requirements, in one directory."""

    dir: Path
    wheel: str
    requirements: str


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise RuntimeError("uv not found (deploy/dev.sh installs it)")
    return uv


def build_project(out: Path) -> Build:
    """uv build (wheel) + uv export (locked runtime deps, hashes) into out."""
    out.mkdir(parents=True, exist_ok=True)
    uv = _uv()
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), "--quiet", str(REPO)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    wheels = sorted(out.glob("livespeaker-*.whl"))
    req = out / "requirements.txt"
    subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            # python3-systemd comes from apt (no wheel on PyPI); tflite-runtime is overridden away.
            "--no-emit-package",
            "systemd-python",
            "--no-emit-package",
            "tflite-runtime",
            "--output-file",
            str(req),
            "--quiet",
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return Build(out, wheels[-1].name, req.name)


def binds(build: Build, pulse_dir: Path) -> list[tuple[str, str]]:
    """Bind mounts the container needs: the build, pip's cache, the PulseAudio socket dir."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    return [
        (str(build.dir), STAGE),
        (str(PIP_CACHE), "/root/.cache/pip"),
        (str(pulse_dir), PULSE_DIR),
    ]


def ro_binds() -> list[tuple[str, str]]:
    """Read-only bind mounts: the host's CA bundle for pip."""
    return [(str(HOST_CA), "/mnt/host-ca.crt")]


def install(c: Container, build: Build) -> None:
    """User, venv, unit, ALSA -> PulseAudio; what provisioning does, minus config and key."""
    c.run(
        "getent group gpio >/dev/null || groupadd --system gpio; "
        "id livespeaker >/dev/null 2>&1 || useradd --system --home-dir /var/lib/livespeaker "
        "--no-create-home --shell /usr/sbin/nologin --groups audio,gpio livespeaker"
    )
    c.run(
        "set -e; python3 -m venv --system-site-packages /opt/livespeaker/venv; "
        "export PIP_CERT=/mnt/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1; "
        # --ignore-requires-python: ai-edge-litert pins backports-strenum 1.3.1, which declares
        # Python < 3.11 (a backport of 3.11's StrEnum); uv installs it regardless, pip refuses.
        "/opt/livespeaker/venv/bin/pip install --quiet --ignore-requires-python "
        f"--require-hashes --no-deps -r {STAGE}/{build.requirements}; "
        "/opt/livespeaker/venv/bin/pip install --quiet --no-deps "
        f"{STAGE}/{build.wheel}",
        timeout=900,
    )
    c.copy_in(REPO / "systemd" / "livespeaker.service", UNIT_PATH)
    # What a Pi with a sound card has, here pointing ALSA's default device at PulseAudio.
    c.write("/etc/asound.conf", "pcm.!default pulse\nctl.!default pulse\n")


def attach_sound_card(card: VirtualSoundCard, sock_dir: Path) -> str:
    """Add a cookie-less socket to the host's virtual sound card in sock_dir (bind it to PULSE_DIR).

    Returns the module index (for `pactl unload-module`).
    """
    sock_dir.mkdir(mode=0o755, exist_ok=True)
    sock_dir.chmod(0o755)
    r = subprocess.run(
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
        text=True,
        timeout=10,
    )
    return r.stdout.strip()


def detach_sound_card(card: VirtualSoundCard, module: str) -> None:
    """Undo attach_sound_card()."""
    subprocess.run(
        ["pactl", "unload-module", module], env=card.env, capture_output=True, timeout=10
    )


def write_config(c: Container, toml: str) -> None:
    """/etc/livespeaker/config.toml (root-owned, world-readable like any /etc file)."""
    c.write("/etc/livespeaker/config.toml", toml)


def write_api_key(c: Container, key: str) -> None:
    """/etc/livespeaker/api-key, root-only: the unit hands it over via LoadCredential=."""
    c.write("/etc/livespeaker/api-key", key + "\n", mode=0o600)


def write_dropin(c: Container, name: str, text: str) -> None:
    """A drop-in for livespeaker.service (then daemon-reload)."""
    c.write(f"{DROPIN_DIR}/{name}.conf", text)
    c.run("systemctl daemon-reload")
