"""HandleStore: atomic 0600 file with time and model; validity window and model checks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from device.live import HandleStore

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
