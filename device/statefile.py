"""Files under state_dir: written atomically, off the event loop, and never fatal.

A full or read-only state_dir must not stop the speaker. `StateFile.set` keeps the new content in
memory at once (this process reads it back from there until it is on disk: a conversation resumes
its newest handle, volume and mute hold, also across a config reload) and writes it atomically
(temp file, fsync, rename: a power cut leaves the old or the new content). Called on the event loop,
the write runs on a worker thread (fsync on an SD card can take hundreds of ms); elsewhere inline.
The newest content wins, whatever order the writes run in. A write that fails is logged as a
warning naming the directory and reported to `problems` (the daemon shows it in systemd's status
line); the next successful write clears it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateProblems:
    """Which state files could not be written, and why (thread-safe; listeners may be called on a
    worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[Path, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever the set of problems changes."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling `listener`."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def summary(self, state_dir: str | os.PathLike[str]) -> str | None:
        """One line naming the directory and the reason, or None when every write of a file in
        `state_dir` succeeded."""
        d = Path(state_dir).absolute()
        with self._lock:
            failed = [(p, why) for p, why in self._failed.items() if p.parent == d]
        if not failed:
            return None
        path, why = failed[0]
        return f"cannot write to {path.parent}: {why}"

    def failed(self, path: Path, exc: OSError) -> None:
        """A write of `path` failed."""
        why = exc.strerror or str(exc)
        with self._lock:
            new = self._failed.get(path) != why
            self._failed[path] = why
            listeners = list(self._listeners)
        if new:
            log.warning(
                "cannot write %s in the state directory %s: %s. Kept in memory: conversations, "
                "volume and mute go on, but are not remembered across a restart",
                path.name,
                path.parent,
                why,
                extra={"STATE_DIR": str(path.parent)},
            )
            for listener in listeners:
                listener()

    def ok(self, path: Path) -> None:
        """A write of `path` succeeded."""
        with self._lock:
            was = self._failed.pop(path, None)
            listeners = list(self._listeners)
        if was is not None:
            log.info("state directory %s writable again (%s saved)", path.parent, path.name)
            for listener in listeners:
                listener()


problems = StateProblems()
"""The process's state-dir write failures (one state_dir per process)."""


def off_loop(write: Callable[[], None]) -> None:
    """Run a blocking write on a worker thread when called on the event loop, else inline."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        write()
    else:
        loop.run_in_executor(None, write)


class _Unset:
    pass


_UNSET = _Unset()


class StateFile:
    """One file under state_dir; `StateFile.at(path)` gives the process's one object for a path."""

    _registry: ClassVar[dict[Path, StateFile]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> StateFile:
        """The shared StateFile for `path` (every store of the same file shares its memory)."""
        p = Path(path).absolute()
        with cls._registry_lock:
            if (f := cls._registry.get(p)) is None:
                f = cls._registry[p] = cls(p)
            return f

    def __init__(self, path: Path, mode: int = 0o600) -> None:
        self.path = path
        self._mode = mode
        self._lock = threading.Lock()  # guards the fields below (held briefly)
        self._write_lock = threading.Lock()  # one write at a time (held across the fsync)
        self._unsaved: str | _Unset | None = _UNSET  # newer than the disk: None = delete
        self._generation = 0

    def read(self) -> str | None:
        """The content (None: no file). What this process set but could not write yet wins over
        the disk. Raises OSError (other than not found) from the disk."""
        with self._lock:
            unsaved = self._unsaved
        if not isinstance(unsaved, _Unset):
            return unsaved
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def set(self, text: str | None) -> None:
        """Replace the content (None deletes the file): in memory now, on disk soon. Never raises."""
        with self._lock:
            self._unsaved = text
            self._generation += 1
        off_loop(self.flush)

    def flush(self) -> None:
        """Write what is not on disk yet (blocking: not on the event loop). Never raises."""
        with self._write_lock:
            with self._lock:
                text, generation = self._unsaved, self._generation
            if isinstance(text, _Unset):
                return
            try:
                if text is None:
                    self.path.unlink(missing_ok=True)
                else:
                    write_atomic(self.path, text, self._mode)
            except OSError as exc:
                problems.failed(self.path, exc)
                return
            with self._lock:
                if self._generation == generation:
                    self._unsaved = _UNSET  # the disk holds the newest: read it from there again
            problems.ok(self.path)
