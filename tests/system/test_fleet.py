"""Fleet provisioning: deploy/ansible/fleet.yml (the real ansible-playbook) provisions two Pi-like
containers over SSH in one run; a second run changes nothing; a release one host cannot run is
rolled back on that host while the other takes it; deploy/provision.sh does the same for several
hosts without Ansible."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import CertFiles
from device.simulator.server import LiveSimulator
from tests.system.conftest import BootContainer
from tests.system.test_provision import (
    PI,
    Pi,
    broken_build,
    release_of,
    setup_pi,
    svc,
    version_of,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(1500)]

FAIL_FLAG = "/etc/livespeaker/fail-health-check"


@pytest.fixture
async def sim_with_key(tls_certs: CertFiles) -> AsyncIterator[tuple[LiveSimulator, str]]:
    key = "AIzaFleet" + secrets.token_hex(16)
    sim = LiveSimulator(tls_certs, api_keys=[key], realtime_factor=20.0, hold_turn_complete=False)
    await sim.start()
    try:
        yield sim, key
    finally:
        await sim.stop()


def host_broken_build(dest: Path) -> Path:
    """A newer release whose daemon dies before READY=1 on a host that has FAIL_FLAG (say, a
    speaker whose sound card this release cannot drive) and runs everywhere else."""
    return broken_build(
        dest,
        version="9.9.9+fleet",
        when=f'__import__("os").path.exists("{FAIL_FLAG}")',
        why="this host cannot run this release",
    )


def inventory(pis: dict[str, Pi], tmp: Path) -> Path:
    known = tmp / "known_hosts"
    known.write_text("".join(p.op.known_hosts.read_text() for p in pis.values()))
    lines = ["[speakers]"]
    for name, p in pis.items():
        c = p.c
        lines.append(
            f"{name} ansible_host={c.host} ansible_port={c.ssh_port} ansible_user={PI} "
            f"ansible_ssh_private_key_file={c.ssh_key}"
        )
    lines += [
        "[speakers:vars]",
        "ansible_python_interpreter=/usr/bin/python3",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null "
        "-o StrictHostKeyChecking=yes'",
    ]
    path = tmp / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def playbook(
    source: Path, inv: Path, pi: Pi, tmp: Path
) -> tuple[int, str, dict[str, dict[str, int]]]:
    """Run the fleet playbook from `source`; (exit status, output, PLAY RECAP per host)."""
    exe = Path(sys.executable).parent / "ansible-playbook"
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    proc = subprocess.run(
        [str(exe), "-i", str(inv), str(source / "deploy" / "ansible" / "fleet.yml"),
         "-e", f"livespeaker_source={source}", "-e", f"livespeaker_stage={tmp / 'stage'}",
         "-e", f"livespeaker_config={pi.op.config}", "-e", f"livespeaker_api_key_file={pi.op.key_file}"],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    print(out)  # shown when the test fails
    recap = {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\w+)\s+:\s+(ok=.*)$", out, re.M)
    }
    return proc.returncode, out, recap


def host_did(out: str, host: str) -> str:
    """What `host` printed in the playbook's last "What the host did" (its journal included when
    it failed): the part of a long output a failed assertion must show."""
    blocks = re.findall(rf"^ok: \[{host}\] => \{{\n.*?^\}}$", out, re.M | re.S)
    return f"{host}:\n{blocks[-1]}" if blocks else f"{host}: no report in the output"


async def test_a_fleet_in_one_run_idempotent_and_a_failing_host_rolls_back_alone(
    boot_container: BootContainer,
    sim_with_key: tuple[LiveSimulator, str],
    sound_card: VirtualSoundCard,
    tmp_path: Path,
) -> None:
    sim, api_key = sim_with_key
    for name in ("kitchen", "hall"):
        (tmp_path / name).mkdir()
    pis = {
        name: setup_pi(
            lambda binds: boot_container(binds=binds), sim, api_key, sound_card, tmp_path / name
        )
        for name in ("kitchen", "hall")
    }
    kitchen, hall = pis["kitchen"], pis["hall"]
    inv = inventory(pis, tmp_path)

    # One run provisions both.
    rc, out, recap = await asyncio.to_thread(playbook, kitchen.v1, inv, kitchen, tmp_path)
    assert rc == 0, out
    assert {h: (r["failed"], r["unreachable"], r["changed"]) for h, r in recap.items()} == {
        "kitchen": (0, 0, 1), "hall": (0, 0, 1)
    }  # fmt: skip
    v1 = release_of(kitchen.c)
    assert v1 and release_of(hall.c) == v1
    for p in pis.values():
        assert svc(p.c, "ActiveState") == "active"
        assert p.c.run("stat -c %a /etc/livespeaker/api-key").stdout.strip() == "600"
    assert api_key not in out

    # Again: nothing to do.
    rc, out, recap = await asyncio.to_thread(playbook, kitchen.v1, inv, kitchen, tmp_path)
    assert rc == 0, out
    assert {h: r["changed"] for h, r in recap.items()} == {"kitchen": 0, "hall": 0}
    assert out.count("NO CHANGES") == 2

    # A release the hall speaker cannot run: rolled back there, taken by the kitchen.
    hall.c.run(f"touch {FAIL_FLAG}")
    v2_src = host_broken_build(tmp_path / "v2")
    rc, out, recap = await asyncio.to_thread(playbook, v2_src, inv, kitchen, tmp_path)
    assert rc != 0, out
    assert recap["kitchen"]["failed"] == 0, host_did(out, "kitchen")
    assert recap["hall"]["failed"] == 1, host_did(out, "hall")
    assert "ROLLED BACK" in out and "this host cannot run this release" in out
    assert "9.9.9+fleet" in version_of(kitchen.c) and release_of(kitchen.c) != v1
    assert release_of(hall.c) == v1 and "9.9.9+fleet" not in version_of(hall.c)
    for p in pis.values():
        assert svc(p.c, "ActiveState") == "active"
    assert api_key not in out

    # Without Ansible: provision.sh with both hosts (an ssh_config names them), one summary.
    hall.c.run(f"rm {FAIL_FLAG}")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("".join(
        f"Host {name}\n  HostName {p.c.host}\n  Port {p.c.ssh_port}\n  IdentityFile {p.c.ssh_key}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {tmp_path / 'known_hosts'}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        for name, p in pis.items()
    ))  # fmt: skip
    proc = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(v2_src / "deploy" / "provision.sh"), "--source", str(v2_src),
         "--ssh-config", str(ssh_config), "--config", str(kitchen.op.config),
         "--api-key-file", str(kitchen.op.key_file), f"{PI}@kitchen", f"{PI}@hall"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode == 0, out
    assert re.search(rf"^\[{PI}@hall\] .*CHANGED", out, re.M), out
    assert re.search(rf"^\[{PI}@kitchen\] .*NO CHANGES", out, re.M), out  # it had this release
    assert re.search(r"summary\n(\s+\S+\s+ok: runs livespeaker\n){2}", out), out
    assert "9.9.9+fleet" in version_of(hall.c)
    assert api_key not in out
