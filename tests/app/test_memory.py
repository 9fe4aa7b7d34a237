"""Mute persistence and the memory of fatal failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device.app.memory import FailureMemory, MuteStore
from device.config import LiveConfig
from device.events import ErrorKind

pytestmark = pytest.mark.unit


def test_mute_survives_a_new_store(tmp_path: Path) -> None:
    assert not MuteStore(tmp_path / "state").load()
    MuteStore(tmp_path / "state").save(True)
    assert MuteStore(tmp_path / "state").load()
    MuteStore(tmp_path / "state").save(False)
    assert not MuteStore(tmp_path / "state").load()


def _load_in_a_new_process(state_dir: Path) -> bool:
    """MuteStore.load() as a restarted daemon would see it (a fresh process: no memory)."""
    code = (
        "import sys; from device.app.memory import MuteStore; print(MuteStore(sys.argv[1]).load())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(state_dir)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def test_unwritable_state_dir_does_not_break_mute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    MuteStore(blocker / "state").save(True)  # logged, not raised
    assert not _load_in_a_new_process(blocker / "state")  # nothing reached the disk
    # This process still knows (a reload builds a new store: the microphone stays muted).
    assert MuteStore(blocker / "state").load()
    assert str(blocker / "state") in caplog.text  # the warning names the directory
    MuteStore(blocker / "state").save(False)
    assert not MuteStore(blocker / "state").load()


def test_fatal_failures_are_remembered_for_their_backoff() -> None:
    now = [0.0]
    mem = FailureMemory(LiveConfig(retry_max_s=60, quota_backoff_s=300), clock=lambda: now[0])
    mem.failed(ErrorKind.NO_NETWORK, "down")
    assert mem.blocking() is None  # transient: the next wake-up tries again
    mem.failed(ErrorKind.BAD_KEY, "rejected")
    got = mem.blocking()
    assert got is not None and got.kind is ErrorKind.BAD_KEY
    now[0] = 61
    assert mem.blocking() is None
    mem.failed(ErrorKind.QUOTA, "429", retry_after=600)
    now[0] = 61 + 599
    assert mem.blocking() is not None
    now[0] = 61 + 601
    assert mem.blocking() is None
    mem.failed(ErrorKind.CONFIG, "no such model")
    mem.succeeded()
    assert mem.blocking() is None


def test_release_memory_freezes_the_heap_and_still_frees_what_a_reload_replaced() -> None:
    """The daemon freezes its heap (the collector's full passes would stall the audio
    callbacks); a part a reload replaces, left in a reference cycle, is still freed."""
    code = """
import gc, weakref
from device.daemon import release_memory

class Part:
    pass

old = Part()
old.me = old
gone = weakref.ref(old)
release_memory()  # the first build: frozen with the rest
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
del old
gc.collect()
assert gone() is not None, "frozen: no collection looks at it"
release_memory()  # a reload
assert gone() is None, "the replaced part was not freed"
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
