"""HandleStore: atomic 0600 file with time and model; validity window and model checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from device.live import HandleStore
from device.live.handles import Instant

pytestmark = pytest.mark.unit


def test_save_load_mode_and_atomic_replace(tmp_path: Path) -> None:
    store = HandleStore(tmp_path / "state")
    assert store.load() is None
    store.save("h-1", "gemini-3.8-live")
    store.save("h-2", "gemini-3.8-live")
    saved = store.load()
    assert saved is not None and saved.handle == "h-2" and saved.model == "gemini-3.8-live"
    assert 0 <= saved.age_s < 5
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temp left


def test_usable_only_within_window_and_for_same_model(tmp_path: Path) -> None:
    store = HandleStore(tmp_path)
    store.save("h", "m1", saved_at=time.time() - 100)
    assert store.usable("m1", 200) is not None
    assert store.usable("m1", 50) is None
    assert store.usable("m2", 200) is None
    assert store.usable("m1", 0) is None  # resumption disabled
    store.clear()
    assert store.load() is None


def test_corrupt_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = HandleStore(tmp_path)
    store.path.write_text("{not json")
    assert store.load() is None
    assert "unreadable resumption handle" in caplog.text


YEAR = 365 * 86400.0


def test_a_wall_clock_jump_does_not_age_a_handle(tmp_path: Path) -> None:
    """A Pi without RTC: the handle was saved 60 s ago while the wall clock was still a year
    behind (before the first NTP sync). The real boot id and CLOCK_BOOTTIME say 60 s."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    boottime = time.clock_gettime(time.CLOCK_BOOTTIME)
    (tmp_path / "live-resumption.json").write_text(
        json.dumps(
            {
                "handle": "h",
                "model": "m",
                "saved_at": time.time() - YEAR - 60,
                "boot_id": boot_id,
                "boottime": boottime - 60,
            }
        )
    )
    saved = HandleStore(tmp_path).usable("m", 7200)
    assert saved is not None
    assert 60 <= saved.age_s < 120


def test_handle_age_by_boot_clock_and_fallbacks(tmp_path: Path) -> None:
    t = [Instant(1_000_000.0, "boot-a", 40.0)]  # unsynced clock at boot
    store = HandleStore(tmp_path, clock=lambda: t[0])
    store.save("h", "m")
    t[0] = Instant(1_000_000.0 + YEAR + 20, "boot-a", 100.0)  # NTP sync jumped a year ahead
    assert store.age_s(store.load() or pytest.fail("no handle")) == 60.0
    assert store.usable("m", 7200) is not None
    # Read back from the file by another store (another process): the same answer.
    other = HandleStore(tmp_path, clock=lambda: t[0])
    saved = other.load()
    assert saved is not None and other.age_s(saved) == 60.0

    # The clock jumps back (a synced clock, then fake-hwclock's older time): still ages.
    store.save("h2", "m")  # at boottime 100
    t[0] = Instant(1_000_000.0, "boot-a", 100.0 + 8000)
    assert store.usable("m", 7200) is None  # 8000 s old, whatever the wall clock says

    # After a reboot: the wall-clock difference, but at least the time since this boot.
    store.save("h3", "m")  # wall 1_000_000 in boot-a
    t[0] = Instant(1_000_000.0 - YEAR, "boot-b", 30.0)  # new boot, clock a year behind
    saved = store.load()
    assert saved is not None and store.age_s(saved) == 30.0
    t[0] = Instant(1_000_000.0 + 3 * 3600, "boot-b", 30.0)  # a synced clock: 3 h later
    assert store.usable("m", 7200) is None

    # A file written by an older release (no boot id): the wall clock is all there is.
    (tmp_path / "live-resumption.json").write_text(
        json.dumps({"handle": "h4", "model": "m", "saved_at": t[0].wall - 100})
    )
    saved = HandleStore(tmp_path, clock=lambda: t[0]).load()
    assert saved is not None and HandleStore(tmp_path, clock=lambda: t[0]).age_s(saved) == 100.0
