"""The newest resumption handle, persisted in state_dir so a conversation outlives the process.

Written atomically with mode 0600 (device.statefile: off the event loop, never fatal: on a full or
read-only state_dir the handle stays in memory and the conversation goes on), with when it was
issued and the model it belongs to. A handle is only used for the same model and while younger
than live.resume_window_s.

How old a handle is must not depend on the wall clock alone: a Pi has no real-time clock, so its
clock starts wherever fake-hwclock or timesyncd left it and jumps (by minutes to years) at the first
NTP sync. So the issue time is stored three ways: the wall clock, the kernel's boot id and
CLOCK_BOOTTIME (seconds since boot, counting suspend, never set by NTP). Its age is:
- same boot: boottime now - boottime then (immune to clock jumps);
- issued in an earlier boot: the wall-clock difference, but at least the time since this boot
  (a clock that is still behind cannot make an old handle look new; one that was behind when the
  handle was saved makes it look older: it is then not used, which costs the conversation's memory,
  never a failed wake-up);
- a file without boot id (written by an older release): the wall-clock difference.
A handle that is used but the server no longer accepts is dropped and the session starts fresh.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.bootclock import Instant, now
from device.statefile import StateFile

__all__ = ["FILENAME", "HandleStore", "Instant", "SavedHandle", "now"]

log = logging.getLogger(__name__)

FILENAME = "live-resumption.json"


@dataclass(frozen=True)
class SavedHandle:
    """A resumption handle with its issue time and model."""

    handle: str
    model: str
    issued: Instant

    @property
    def saved_at(self) -> float:
        """Issue time on the wall clock (unix seconds)."""
        return self.issued.wall

    @property
    def age_s(self) -> float:
        """Seconds since the handle was issued (by the system's clocks)."""
        return now().seconds_since(self.issued)

    def to_json(self) -> str:
        """The file's content."""
        return json.dumps(
            {
                "handle": self.handle,
                "model": self.model,
                "saved_at": self.issued.wall,
                "boot_id": self.issued.boot_id,
                "boottime": self.issued.boottime,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SavedHandle:
        """Parse the file's content (ValueError/KeyError/TypeError when it is not one)."""
        data = json.loads(text)
        boot_id, boottime = data.get("boot_id"), data.get("boottime")
        issued = Instant(
            float(data["saved_at"]),
            None if boot_id is None else str(boot_id),
            None if boottime is None else float(boottime),
        )
        return cls(str(data["handle"]), str(data["model"]), issued)


class HandleStore:
    """Load/save/clear the handle file in a state directory."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        filename: str = FILENAME,
        *,
        clock: Callable[[], Instant] = now,
    ) -> None:
        self.path = Path(state_dir) / filename
        self._file = StateFile.at(self.path)
        self._clock = clock

    def load(self) -> SavedHandle | None:
        """The saved handle (whatever its age), or None when there is none or it is unreadable."""
        try:
            text = self._file.read()
            return None if text is None else SavedHandle.from_json(text)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable resumption handle file %s: %s", self.path, exc)
            return None

    def age_s(self, saved: SavedHandle) -> float:
        """Seconds since `saved` was issued, by this store's clock."""
        return self._clock().seconds_since(saved.issued)

    def usable(self, model: str, window_s: float) -> SavedHandle | None:
        """The saved handle if it is for `model` and younger than window_s, else None."""
        saved = self.load()
        if saved is None or window_s <= 0:
            return None
        if saved.model != model:
            log.info(
                "saved conversation is for model %s, not %s: starting fresh", saved.model, model
            )
            return None
        age = self.age_s(saved)
        if age > window_s:
            log.info(
                "saved conversation is %.0f s old (window %.0f s): starting fresh", age, window_s
            )
            return None
        return saved

    def save(self, handle: str, model: str, saved_at: float | None = None) -> SavedHandle:
        """Replace the saved handle: in memory at once, on disk (0600, atomic) off the event loop.
        Never raises: a failed write is a warning (device.statefile). `saved_at` back-dates the
        issue time to that wall-clock time (all three clocks move back by the same amount)."""
        t = self._clock()
        if saved_at is not None:
            back = t.wall - saved_at
            t = Instant(saved_at, t.boot_id, None if t.boottime is None else t.boottime - back)
        saved = SavedHandle(handle, model, t)
        self._file.set(saved.to_json())
        return saved

    def clear(self) -> None:
        """Forget the saved handle (never raises)."""
        self._file.set(None)
