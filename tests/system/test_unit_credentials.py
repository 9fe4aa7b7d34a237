"""The unit's credential setup under real systemd 252 (Debian 12) and 257 (Debian 13).

LoadCredential= of a missing file fails a unit at credential setup (status=243/CREDENTIALS) on both;
the unit's SetCredential= fallback must let it start without a key file, and the key file must win
when it exists. The installed unit is untouched; a drop-in swaps only ExecStart for a small notify
stub that reports what it found in $CREDENTIALS_DIRECTORY (the real daemon's behaviour without a
key is tested in test_service.py). Also: `systemd-analyze verify` of the unit is clean on each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.container import booted

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
UNIT = "/etc/systemd/system/livespeaker.service"
STUB = "/usr/local/bin/credential-stub"
STUB_CODE = """#!/usr/bin/python3
import os, socket, time
path = os.path.join(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent"), "api-key")
try:
    key = open(path).read().strip()
    found = f"key of {len(key)} chars" if key else "no key"
except OSError as exc:
    found = f"unreadable: {exc.strerror}"
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("\\0" + addr[1:] if addr.startswith("@") else addr)
s.send(f"READY=1\\nSTATUS={found}".encode())
time.sleep(3600)
"""


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_the_unit_starts_without_a_key_file_and_uses_one_that_exists(
    suite: str, tmp_path: Path
) -> None:
    with booted(tmp_path, suite=suite) as c:
        version = c.run("systemctl --version").stdout.split()[1]
        c.run(
            "getent group gpio >/dev/null || groupadd --system gpio; "
            "useradd --system --home-dir /var/lib/livespeaker --no-create-home "
            "--shell /usr/sbin/nologin --groups audio,gpio livespeaker"
        )
        c.copy_in(REPO / "systemd" / "livespeaker.service", UNIT)
        c.write(STUB, STUB_CODE, mode=0o755)
        c.write(
            "/etc/systemd/system/livespeaker.service.d/50-stub.conf",
            f"[Service]\nExecStart=\nExecStart={STUB}\n",
        )
        c.run("systemctl daemon-reload")

        def status() -> tuple[str, str]:
            def show(prop: str) -> str:
                return c.run(f"systemctl show -p {prop} --value livespeaker").stdout.strip()

            return show("ActiveState"), show("StatusText")

        c.run("rm -f /etc/livespeaker/api-key")
        r = c.run("systemctl start livespeaker", check=False, timeout=120)
        journal = c.run("journalctl -u livespeaker -o cat --no-pager", check=False).stdout
        assert r.returncode == 0, f"systemd {version}: {r.stderr}\n{journal}"
        assert status() == ("active", "no key"), journal
        c.run("systemctl stop livespeaker")

        c.run("mkdir -p /etc/livespeaker")
        c.write("/etc/livespeaker/api-key", "sk-0123456789\n", mode=0o600)
        c.run("systemctl start livespeaker", timeout=120)
        assert status() == ("active", "key of 13 chars")
        c.run("systemctl stop livespeaker")

        # The untouched unit verifies clean here too (with a binary at ExecStart's path).
        c.run(
            "mkdir -p /opt/livespeaker/venv/bin && "
            f"ln -sf {STUB} /opt/livespeaker/venv/bin/livespeaker"
        )
        v = c.run(f"systemd-analyze verify {UNIT}", check=False)
        lines = [ln for ln in (v.stdout + v.stderr).splitlines() if "livespeaker.service" in ln]
        assert v.returncode == 0 and not lines, f"systemd {version}: {v.stdout}{v.stderr}"
        print(f"systemd {version}: starts without a key file; verify clean")
