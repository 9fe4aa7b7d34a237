"""State files on a real filesystem that fills up and frees again (a 64 KiB tmpfs; root, like CI)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.statefile import StateFile, problems

pytestmark = pytest.mark.unit


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "state"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(d: Path) -> Path:
    filler = d / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    return filler


def test_full_then_freed(tiny_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = StateFile.at(tiny_fs / "volume")
    f.set("40\n")
    assert (tiny_fs / "volume").read_text() == "40\n"
    assert problems.summary(tiny_fs) is None
    filler = _fill(tiny_fs)
    f.set("30\n")  # does not raise
    assert f.read() == "30\n"  # this process keeps the newest value
    assert (tiny_fs / "volume").read_text() == "40\n"  # the old one is intact on disk
    assert problems.summary(tiny_fs) == f"cannot write to {tiny_fs}: No space left on device"
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler", "volume"]  # no temp left
    assert f"state directory {tiny_fs}" in caplog.text
    filler.unlink()
    f.set("20\n")
    assert (tiny_fs / "volume").read_text() == "20\n"
    assert problems.summary(tiny_fs) is None  # the warning clears with the next good write


async def test_on_the_event_loop_the_write_runs_on_a_worker_thread(tiny_fs: Path) -> None:
    _fill(tiny_fs)
    threads: list[threading.Thread] = []

    def note() -> None:
        threads.append(threading.current_thread())

    problems.add_listener(note)
    try:
        f = StateFile.at(tiny_fs / "live-resumption.json")
        f.set('{"handle": "h"}')
        assert f.read() == '{"handle": "h"}'  # at once, before any write
        for _ in range(200):
            if threads:
                break
            await asyncio.sleep(0.01)
    finally:
        problems.remove_listener(note)
    assert threads and threads[0] is not threading.main_thread()
