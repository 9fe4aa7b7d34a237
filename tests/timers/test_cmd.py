"""`livespeaker timers` and `timers cancel`, and doctor's report of pending timers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.bootclock import Instant
from device.cli import main
from device.config import Config
from device.doctor.context import DoctorContext
from device.doctor.state import check
from device.timers.book import TimerBook

pytestmark = pytest.mark.unit


def config_file(tmp_path: Path) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    return str(path)


def test_lists_cancels_one_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = config_file(tmp_path)
    book = TimerBook(tmp_path / "state")
    pasta = book.add_timer(540, "pasta")
    book.add_alarm(7, 30, (0, 4))
    assert main(["--config", conf, "timers"]) == 0
    out = capsys.readouterr().out
    assert "pasta timer" in out and "in 9 minutes" in out
    assert "07:30 alarm" in out and "repeats monday, friday" in out
    assert main(["--config", conf, "timers", "cancel", pasta.id]) == 0
    assert f"cancelled timer {pasta.id} (pasta timer)" in capsys.readouterr().out
    assert main(["--config", conf, "timers", "cancel", pasta.id]) == 1
    assert "no pending timer or alarm" in capsys.readouterr().err
    assert main(["--config", conf, "timers", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in doc["pending"]] == ["alarm"]
    assert main(["--config", conf, "timers", "cancel", "--all"]) == 0
    book.refresh()
    assert book.pending() == []
    assert main(["--config", conf, "timers"]) == 0
    assert "no timers or alarms pending" in capsys.readouterr().out


def test_doctor_reports_pending_and_missed(tmp_path: Path) -> None:
    cfg = Config.model_validate({"state_dir": str(tmp_path)})
    assert "no timers or alarms pending" in check(DoctorContext(cfg)).detail
    book = TimerBook(tmp_path)
    book.add_timer(600, "bread")
    result = check(DoctorContext(cfg))
    assert result.numbers["timers_pending"] == 1
    assert "1 timer(s)/alarm(s) pending, next: bread timer in" in result.detail
    # A timer set an hour ago in an earlier boot ran out while the device was off.
    old = TimerBook(tmp_path, clock=lambda: Instant(time.time() - 3600, "an-earlier-boot", 50.0))
    old.add_timer(10, "tea")
    TimerBook(tmp_path).check()
    result = check(DoctorContext(cfg))
    assert result.numbers["timers_missed_24h"] == 1
    assert "1 missed in the last day (tea timer)" in result.detail


def test_doctor_says_whether_the_clock_alarms_ring_by_is_synchronized(tmp_path: Path) -> None:
    from device.bootclock import clock_synchronized

    synced = clock_synchronized()
    assert isinstance(synced, bool)  # Linux: the kernel answers adjtimex(2)
    cfg = Config.model_validate({"state_dir": str(tmp_path)})
    result = check(DoctorContext(cfg))
    assert result.numbers["clock_synchronized"] is synced
    assert ("the clock is not synchronized (NTP) yet" in result.detail) is (not synced)


WRITER = """
import asyncio, sys
from device.timers import scheduler
from device.timers.book import TimerBook

async def main():
    book = TimerBook(sys.argv[1])
    task = asyncio.create_task(scheduler.run(book, lambda ev: None))
    await asyncio.sleep(0.2)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    book.add_timer(600, "bread")
    print("added", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    task.cancel()

asyncio.run(main())
"""


def test_a_cancel_while_the_daemon_runs_is_applied_by_it_and_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon (here: a process running the scheduler) is the one writer of timers.json: a
    cancel from the command goes to it as a request, and a timer it sets meanwhile stays."""
    conf, state = config_file(tmp_path), tmp_path / "state"
    book = TimerBook(state)
    pasta = book.add_timer(600, "pasta")
    tea = book.add_timer(900, "tea")
    book.flush()
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as daemon:
        assert daemon.stdin is not None and daemon.stdout is not None
        assert daemon.stdout.readline().strip() == "ready"
        assert main(["--config", conf, "timers", "cancel", pasta.id]) == 0
        assert f"cancelled timer {pasta.id} (pasta timer)" in capsys.readouterr().out
        daemon.stdin.write("add\n")
        daemon.stdin.flush()
        assert daemon.stdout.readline().strip() == "added"
        deadline = time.monotonic() + 5
        names: list[str] = []
        while time.monotonic() < deadline:
            book.refresh()
            names = sorted(i.name for i in book.pending())
            if names == ["bread timer", "tea timer"]:
                break
            time.sleep(0.05)
        assert names == ["bread timer", "tea timer"]  # the daemon's new timer, the cancel kept
        assert main(["--config", conf, "timers", "cancel", "nope"]) == 1
        assert main(["--config", conf, "timers", "cancel", "--all"]) == 0
        out = capsys.readouterr().out
        assert f"cancelled timer {tea.id} (tea timer)" in out and "(bread timer)" in out
        assert not list((state / "timers.requests").glob("*.json"))
        daemon.stdin.write("end\n")
        daemon.stdin.flush()
