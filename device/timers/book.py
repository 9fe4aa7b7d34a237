"""The pending timers and alarms and what became of recent ones, persisted in state_dir.

`<state_dir>/timers.json` is written atomically on every change (device.statefile: temp file,
fsync, rename, off the event loop, never fatal), so a restart or a power cut loses none. One
process writes it: the daemon holds an flock on the state_dir itself for its life
(`claim_writer`; no lock file: a full state_dir gets nothing new).
`livespeaker timers cancel` writes the file itself only when no daemon holds it; otherwise it
drops a request into `timers.requests/`, which the daemon applies at its next check (within
half a second) and deletes, so a cancel and a timer the daemon sets at the same moment cannot
overwrite each other. `refresh()` takes in what is on disk; the daemon calls it before every
check.

`check()` moves what is due out of the pending list: rung if it is at most `grace_s` late, else
missed (a timer that ran out while the daemon was down, an alarm the clock jumped over by far).
The book also keeps the newest moment it has seen (`seen`): within one boot the true wall time is
at least that moment plus the boottime since, so a wall clock behind it is known to be wrong (not
synced yet after boot, or set back) and no alarm is set by it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.bootclock import Instant, now
from device.statefile import StateFile, write_atomic
from device.timers.model import Done, Item, Kind, Outcome, after_ring, due_wall, next_occurrence

log = logging.getLogger(__name__)

FILENAME = "timers.json"
REQUESTS_DIR = "timers.requests"
CANCEL_ALL = "*"
"""A cancel request for every pending item."""
_writer_locks: dict[Path, int] = {}
"""The state_dirs this process holds the writer's flock on (process-wide: a reload builds a new
book)."""


def claim_writer(state_dir: str | os.PathLike[str]) -> bool:
    """Become the one process that writes timers.json in `state_dir`, for as long as it lives
    (the daemon; a command that exits next may too when no daemon runs). False when another
    process holds it. A state_dir where no lock can be made counts as claimed (nothing else
    could write there either)."""
    path = Path(state_dir).resolve()
    if path in _writer_locks:
        return True
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _writer_locks[path] = fd
    return True


def request_cancel(state_dir: str | os.PathLike[str], item_id: str) -> Path:
    """Ask the daemon that writes timers.json to cancel `item_id` (CANCEL_ALL: every pending
    one); returns the request file, which the daemon deletes once applied."""
    path = Path(state_dir) / REQUESTS_DIR / f"{time.time_ns()}-{os.getpid()}.json"
    write_atomic(path, json.dumps({"cancel": item_id}))
    return path


HISTORY_MAX = 20
CLOCK_SLACK_S = 120.0
"""How far the wall clock may lag the known lower bound before it counts as wrong (NTP may set
a clock that ran a little ahead back by this much)."""
SNOOZE_WINDOW_S = 1800.0
"""Snooze applies to what rang within this long."""


class ClockNotSetError(ValueError):
    """The wall clock is known to be behind (not synced yet): no alarm can be placed by it."""


@dataclass(frozen=True, slots=True)
class _Content:
    pending: tuple[Item, ...] = ()
    history: tuple[Done, ...] = ()
    next_id: int = 1
    seen: Instant | None = None


class TimerBook:
    """Pending timers and alarms (sorted by due time) and the recent outcomes."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        grace_s: float = 300.0,
        clock: Callable[[], Instant] = now,
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.path = Path(state_dir) / FILENAME
        self._file = StateFile.at(self.path)
        self.grace_s = grace_s
        self.clock = clock
        """The clocks the book reads (injectable for tests)."""
        self.tz = tz
        self._c = _Content()
        self._text: str | None = None
        self._applied: set[str] = set()
        """Request files applied by this book (apply_requests)."""
        self._read_error: str | None = None
        self.refresh()

    # --- reading ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the file if it changed (another process, or this one before a restart)."""
        try:
            text = self._file.read()
        except OSError as exc:
            if str(exc) != self._read_error:  # once, not at every check
                log.warning("cannot read %s: %s (keeping what is in memory)", self.path, exc)
            self._read_error = str(exc)
            return
        self._read_error = None
        if text == self._text:
            return
        self._text = text
        if text is None:
            self._c = _Content(seen=self._c.seen)
            return
        try:
            data = json.loads(text)
            self._c = _Content(
                tuple(Item.from_dict(d) for d in data.get("pending", [])),
                tuple(Done.from_dict(d) for d in data.get("history", [])),
                int(data.get("next_id", 1)),
                Instant.from_dict(data["seen"]) if data.get("seen") else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable timers file %s: %s", self.path, exc)

    def pending(self) -> list[Item]:
        """Pending items, soonest first."""
        t = self.clock()
        return sorted(self._c.pending, key=lambda i: -i.late_s(t))

    def history(self) -> list[Done]:
        """Recent outcomes, newest first."""
        return sorted(self._c.history, key=lambda d: -d.at_wall)

    def get(self, item_id: str) -> Item | None:
        """The pending item with that id."""
        return next((i for i in self._c.pending if i.id == item_id), None)

    def seconds_to_next(self, lead_s: float = 0.0) -> float | None:
        """Seconds until the soonest pending item is due, `lead_s` early (<= 0: due), None when
        none is pending."""
        t = self.clock()
        lates = [i.late_s(t) for i in self._c.pending]
        return -max(lates) - lead_s if lates else None

    def clock_trusted(self, t: Instant | None = None) -> bool:
        """False when the wall clock is behind a moment this book has already seen."""
        t = t or self.clock()
        seen = self._c.seen
        if seen is None:
            return True
        floor = seen.wall
        if t.same_boot(seen):
            assert t.boottime is not None and seen.boottime is not None
            floor += t.boottime - seen.boottime
        return t.wall >= floor - CLOCK_SLACK_S

    # --- changes ------------------------------------------------------------------------------

    def add_timer(self, duration_s: float, label: str = "") -> Item:
        """A new timer running from now."""
        if not duration_s > 0:
            raise ValueError(f"a timer needs a positive duration, not {duration_s!r}")
        t = self.clock()
        item = Item(self._new_id(), Kind.TIMER, label.strip(), t, duration_s=float(duration_s))
        self._save(pending=(*self._c.pending, item))
        log.info(
            "timer %s set: %s, %.0f s", item.id, item.name, duration_s, extra={"TIMER": item.id}
        )
        return item

    def add_alarm(
        self, hour: int, minute: int, weekdays: tuple[int, ...] = (), label: str = ""
    ) -> Item:
        """A new alarm at the next hour:minute local time (on one of `weekdays`, if given)."""
        t = self.clock()
        if not self.clock_trusted(t):
            raise ClockNotSetError("the device's clock is not set yet; try again in a minute")
        days = tuple(sorted(set(weekdays)))
        if any(not 0 <= d <= 6 for d in days):
            raise ValueError(f"weekdays are 0 (Monday) to 6 (Sunday), not {list(weekdays)}")
        at = next_occurrence(hour, minute, days, t.wall, self.tz)
        item = Item(
            self._new_id(), Kind.ALARM, label.strip(), t, hour=hour, minute=minute,
            weekdays=days, next_at=at,
        )  # fmt: skip
        self._save(pending=(*self._c.pending, item))
        log.info("alarm %s set: %s", item.id, item.name, extra={"TIMER": item.id})
        return item

    def cancel(self, item_id: str) -> Item | None:
        """Cancel one pending item; None when there is no such id."""
        item = self.get(item_id)
        if item is not None:
            self._retire([item], Outcome.CANCELLED)
        return item

    def cancel_all(self) -> list[Item]:
        """Cancel every pending item."""
        items = list(self._c.pending)
        if items:
            self._retire(items, Outcome.CANCELLED)
        return items

    def snooze(self, minutes: float) -> Item | None:
        """A new timer for `minutes`, labelled like the newest item that rang within the last
        half hour; None when nothing rang lately."""
        t = self.clock()
        rang = [d for d in self.history() if d.outcome is Outcome.RANG]
        if not rang or t.wall - rang[0].at_wall > SNOOZE_WINDOW_S:
            return None
        was = rang[0].item
        label = was.label or (was.name if was.kind is Kind.ALARM else "")
        return self.add_timer(minutes * 60.0, label)

    def check(self, lead_s: float = 0.0) -> list[Done]:
        """Take what is due off the pending list: rung (at most grace_s late) or missed.
        `lead_s`: count as due that much early (the sound takes that long to be heard)."""
        t = self.clock()
        due = [i for i in self._c.pending if i.late_s(t) >= -lead_s]
        if not due:
            if self.clock_trusted(t):  # the floor only moves up, with a clock that is right
                self._c = _Content(self._c.pending, self._c.history, self._c.next_id, t)
            return []
        done: list[Done] = []
        keep = [i for i in self._c.pending if i not in due]
        for item in due:
            late = item.late_s(t)
            outcome = Outcome.RANG if late <= self.grace_s else Outcome.MISSED
            done.append(Done(item, outcome, due_wall(item, t), t.wall))
            if (again := after_ring(item, t, self.tz)) is not None:
                keep.append(again)
            log.log(
                logging.INFO if outcome is Outcome.RANG else logging.WARNING,
                "%s %s %s (%.1f s late)",
                item.kind.value,
                item.id,
                "rings" if outcome is Outcome.RANG else "was missed",
                late,
                extra={"TIMER": item.id, "OUTCOME": outcome.value},
            )
        self._save(pending=tuple(keep), history=(*self._c.history, *done))
        return done

    def untold(self, within_s: float) -> list[Done]:
        """What rang or was missed in the last `within_s` and no conversation was told of yet,
        oldest first."""
        wall = self.clock().wall
        return [
            d
            for d in sorted(self._c.history, key=lambda d: d.at_wall)
            if not d.told
            and d.outcome in (Outcome.RANG, Outcome.MISSED)
            and wall - d.at_wall <= within_s
        ]

    def mark_told(self, keys: set[tuple[str, float]]) -> None:
        """A conversation was told of these outcomes (Done.key): not again."""
        self.refresh()
        if not any(d.key in keys and not d.told for d in self._c.history):
            return
        self._save(
            history=tuple(
                dataclasses.replace(d, told=True) if d.key in keys else d for d in self._c.history
            )
        )

    def apply_requests(self) -> list[Item]:
        """Apply the cancel requests other processes left (the writer calls it before every
        check); returns what they cancelled. A request that cannot be read is dropped (logged)."""
        folder = self.path.parent / REQUESTS_DIR
        try:
            requests = sorted(folder.glob("*.json"))
        except OSError:
            return []
        gone: list[Item] = []
        for path in requests:
            if path.name in self._applied:
                continue  # applied, but it could not be deleted: not again
            self._applied.add(path.name)
            try:
                item_id = str(json.loads(path.read_text(encoding="utf-8"))["cancel"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("dropping an unreadable timers request %s: %s", path.name, exc)
                item_id = None
            if item_id == CANCEL_ALL:
                gone += self.cancel_all()
            elif item_id is not None and (item := self.cancel(item_id)) is not None:
                gone.append(item)
            try:
                path.unlink()
            except OSError as exc:
                log.warning("cannot delete the applied timers request %s: %s", path, exc)
        for item in gone:
            log.info("%s %s cancelled by a command", item.kind.value, item.id)
        return gone

    def flush(self) -> None:
        """Write what is not on disk yet (blocking; for a command that exits next)."""
        self._file.flush()

    # --- internals ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        self.refresh()
        n = self._c.next_id
        self._c = _Content(self._c.pending, self._c.history, n + 1, self._c.seen)
        return str(n)

    def _retire(self, items: list[Item], outcome: Outcome) -> None:
        t = self.clock()
        gone = {i.id for i in items}
        done = tuple(Done(i, outcome, due_wall(i, t), t.wall) for i in items)
        self._save(
            pending=tuple(i for i in self._c.pending if i.id not in gone),
            history=(*self._c.history, *done),
        )

    def _save(
        self, *, pending: tuple[Item, ...] | None = None, history: tuple[Done, ...] | None = None
    ) -> None:
        t = self.clock()
        seen = self._c.seen
        if seen is None or self.clock_trusted(t):  # never lower the known floor
            seen = t
        hist = self._c.history if history is None else history
        self._c = _Content(
            self._c.pending if pending is None else pending,
            tuple(sorted(hist, key=lambda d: d.at_wall)[-HISTORY_MAX:]),
            self._c.next_id,
            seen,
        )
        text = json.dumps(
            {
                "version": 1,
                "pending": [i.to_dict() for i in self._c.pending],
                "history": [d.to_dict() for d in self._c.history],
                "next_id": self._c.next_id,
                "seen": seen.to_dict(),
            },
            indent=1,
        )
        self._text = text
        self._file.set(text)
