"""Timers and alarms as plain data, and when each is due. Pure: no I/O, no asyncio.

A timer counts a duration from the moment it was set; how much of it has passed is
`Instant.seconds_since` (device.bootclock): CLOCK_BOOTTIME within the same boot, so wall-clock
jumps do not move it; after a reboot the saved wall time (flagged `other_boot`).
An alarm is a local wall-clock time (hour, minute, optionally repeating on weekdays). When set, its
next occurrence is fixed as an absolute wall time (`next_at`); after it fires the next one is
computed strictly after both that occurrence and now. So a clock jumping back after a ring cannot
ring it again, and a clock jumping back before it only delays it; a clock jumping forward over it
rings it at once (late), or records it as missed when it is later than the grace.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from device.bootclock import Instant

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Kind(StrEnum):
    """What a pending item is."""

    TIMER = "timer"
    """Rings a duration after it was set."""
    ALARM = "alarm"
    """Rings at a local wall-clock time (optionally every listed weekday)."""


class Outcome(StrEnum):
    """How an item left the pending list (kept in the history for the model and the CLI)."""

    RANG = "rang"
    """It came due and the device rang."""
    MISSED = "missed"
    """It came due while the device could not ring (daemon down, clock jump) and more than
    the grace ago: not rung, reported instead."""
    CANCELLED = "cancelled"
    """Cancelled before it came due."""


@dataclass(frozen=True, slots=True)
class Item:
    """A pending timer or alarm."""

    id: str
    kind: Kind
    label: str
    set_at: Instant
    duration_s: float = 0.0
    """Timers: seconds from set_at."""
    hour: int = 0
    minute: int = 0
    weekdays: tuple[int, ...] = ()
    """Alarms: 0 = Monday .. 6 = Sunday; empty = once."""
    next_at: float = 0.0
    """Alarms: wall-clock time (unix s) of the next occurrence."""

    @property
    def name(self) -> str:
        """How a person calls it: 'the pasta timer', 'the 07:30 alarm'."""
        if self.kind is Kind.TIMER:
            return f"{self.label} timer" if self.label else "timer"
        what = f"{self.hour:02d}:{self.minute:02d} alarm"
        return f"{self.label} ({what})" if self.label else what

    def late_s(self, now: Instant) -> float:
        """Seconds since it came due (negative: seconds left)."""
        if self.kind is Kind.TIMER:
            return now.seconds_since(self.set_at) - self.duration_s
        return now.wall - self.next_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        d: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "label": self.label,
            "set_at": self.set_at.to_dict(),
        }
        if self.kind is Kind.TIMER:
            d["duration_s"] = self.duration_s
        else:
            d |= {
                "hour": self.hour,
                "minute": self.minute,
                "weekdays": list(self.weekdays),
                "next_at": self.next_at,
            }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Item:
        """Inverse of to_dict (KeyError/TypeError/ValueError when it is not one)."""
        kind = Kind(d["kind"])
        item_id, label = str(d["id"]), str(d.get("label", ""))
        set_at = Instant.from_dict(d["set_at"])
        if kind is Kind.TIMER:
            return cls(item_id, kind, label, set_at, duration_s=float(d["duration_s"]))
        return cls(
            item_id,
            kind,
            label,
            set_at,
            hour=int(d["hour"]),
            minute=int(d["minute"]),
            weekdays=tuple(sorted({int(w) for w in d.get("weekdays", [])})),
            next_at=float(d["next_at"]),
        )


@dataclass(frozen=True, slots=True)
class Done:
    """An item that left the pending list, and when (wall clock) it was due and left."""

    item: Item
    outcome: Outcome
    due_wall: float
    """Wall-clock time it came due (for a cancel: when it would have)."""
    at_wall: float
    """Wall-clock time it rang, was found missed, or was cancelled."""
    told: bool = False
    """A conversation has been told about it (device.timers.tools.TimerTools.news)."""

    @property
    def key(self) -> tuple[str, float]:
        """Which outcome this is (an item id can ring more than once: a repeating alarm)."""
        return (self.item.id, self.at_wall)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "item": self.item.to_dict(),
            "outcome": self.outcome.value,
            "due_wall": self.due_wall,
            "at_wall": self.at_wall,
            "told": self.told,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Done:
        """Inverse of to_dict."""
        return cls(
            Item.from_dict(d["item"]),
            Outcome(d["outcome"]),
            float(d["due_wall"]),
            float(d["at_wall"]),
            bool(d.get("told", False)),
        )


def next_occurrence(
    hour: int, minute: int, weekdays: tuple[int, ...], after: float, tz: dt.tzinfo | None = None
) -> float:
    """The first wall time strictly after `after` that is hour:minute local time (in `tz`, None:
    the system's zone) on one of `weekdays` (empty: any day)."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"no such time of day: {hour:02d}:{minute:02d}")
    start = dt.datetime.fromtimestamp(after, tz)
    for days in range(8):
        day = (start + dt.timedelta(days=days)).date()
        if weekdays and day.weekday() not in weekdays:
            continue
        at = dt.datetime.combine(day, dt.time(hour, minute), tz).timestamp()
        if at > after:
            return at
    raise ValueError("no weekday given")  # unreachable with 0..6 in weekdays


def after_ring(item: Item, now: Instant, tz: dt.tzinfo | None = None) -> Item | None:
    """What stays pending once `item` came due: the next occurrence of a repeating alarm (strictly
    after both this occurrence and now), or None."""
    if item.kind is Kind.TIMER or not item.weekdays:
        return None
    after = max(now.wall, item.next_at)
    return replace(item, next_at=next_occurrence(item.hour, item.minute, item.weekdays, after, tz))


def due_wall(item: Item, now: Instant) -> float:
    """Wall-clock time the item comes (came) due, by `now`'s clocks."""
    return now.wall - item.late_s(now)


def describe_left(seconds: float) -> str:
    """'3 minutes 5 seconds' for a person (the model reads it out)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{v} {u}{'' if v == 1 else 's'}" for v, u in ((h, "hour"), (m, "minute")) if v]
    if sec or not parts:
        parts.append(f"{sec} second{'' if sec == 1 else 's'}")
    return " ".join(parts)
