"""`livespeaker timers` and `timers cancel`, and doctor's report of pending timers."""

from __future__ import annotations

import json
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
