"""The timer and alarm tools the Live session declares, and their execution against a TimerBook.

Results are plain dicts the model reads back to the user ("your pasta timer has 3 minutes left");
bad arguments answer {"error": ...} (raised as ValueError here, turned into the error by
device.tools.ToolExecutor). Recent outcomes (rung, missed) come with list_timers, and the next
session is told of them once, unasked (`news()`: a device note after the system instruction,
marked told in state_dir once that session opened), so the model can say "your pasta timer went
off 2 minutes ago".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from device.events import ToolSpec
from device.timers.book import TimerBook
from device.timers.model import WEEKDAYS, Done, Item, Kind, Outcome, describe_left

RECENT_S = 3600.0
"""list_timers reports outcomes of the last hour."""
MAX_TIMER_S = 24 * 3600.0

SET_TIMER = ToolSpec(
    name="set_timer",
    description=(
        "Start a countdown timer on the device, e.g. 'a pasta timer for nine minutes'. Give the "
        "duration as hours, minutes and/or seconds, and optionally a short label ('pasta'). "
        "Several timers can run at once. The device rings when it runs out, even offline."
    ),
    parameters={
        "type": "object",
        "properties": {
            "hours": {"type": "number", "minimum": 0},
            "minutes": {"type": "number", "minimum": 0},
            "seconds": {"type": "number", "minimum": 0},
            "label": {"type": "string"},
        },
    },
)
SET_ALARM = ToolSpec(
    name="set_alarm",
    description=(
        "Set an alarm at a local clock time ('HH:MM', 24-hour), once (the next time the clock "
        "shows it) or repeating on the given weekdays; optional label."
    ),
    parameters={
        "type": "object",
        "properties": {
            "time": {"type": "string", "pattern": "^[0-2]?[0-9]:[0-5][0-9]$"},
            "weekdays": {"type": "array", "items": {"type": "string", "enum": list(WEEKDAYS)}},
            "label": {"type": "string"},
        },
        "required": ["time"],
    },
)
LIST_TIMERS = ToolSpec(
    name="list_timers",
    description=(
        "List the pending timers and alarms (id, label, time left or ring time) and what rang "
        "or was missed in the last hour (how long ago)."
    ),
    parameters={"type": "object", "properties": {}},
)
CANCEL_TIMER = ToolSpec(
    name="cancel_timer",
    description=(
        "Cancel a timer or alarm by its id (from list_timers or set_timer), or by its label, "
        "or all of them with all=true."
    ),
    parameters={
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "label": {"type": "string"},
            "all": {"type": "boolean"},
        },
    },
)
SNOOZE = ToolSpec(
    name="snooze",
    description="Ring the timer or alarm that just rang again in a few minutes (default 9).",
    parameters={
        "type": "object",
        "properties": {"minutes": {"type": "number", "minimum": 1, "maximum": 120}},
    },
)

TIMER_TOOLS = (SET_TIMER, SET_ALARM, LIST_TIMERS, CANCEL_TIMER, SNOOZE)
TIMER_TOOL_NAMES = frozenset(t.name for t in TIMER_TOOLS)


class TimerTools:
    """Runs the timer tools against one book."""

    def __init__(self, book: TimerBook) -> None:
        self.book = book

    def run(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Execute one call (raises ValueError/TypeError on bad arguments)."""
        self.book.refresh()
        if name == "set_timer":
            return self._set_timer(args)
        if name == "set_alarm":
            return self._set_alarm(args)
        if name == "list_timers":
            return self.listing()
        if name == "cancel_timer":
            return self._cancel(args)
        if name == "snooze":
            item = self.book.snooze(_number(args, "minutes", 9.0))
            if item is None:
                return {"error": "nothing rang in the last half hour to snooze"}
            return {"snoozed": self._pending(item)}
        raise ValueError(f"unknown timer tool {name!r}")

    def _set_timer(self, args: dict[str, Any]) -> dict[str, Any]:
        total = sum(
            _number(args, k, 0.0) * f for k, f in (("hours", 3600), ("minutes", 60), ("seconds", 1))
        )
        if not 0 < total <= MAX_TIMER_S:
            raise ValueError("give a duration from 1 second to 24 hours (hours/minutes/seconds)")
        item = self.book.add_timer(total, str(args.get("label") or ""))
        return {"set": self._pending(item), "pending": len(self.book.pending())}

    def _set_alarm(self, args: dict[str, Any]) -> dict[str, Any]:
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(args.get("time", "")))
        if not m:
            raise ValueError("'time' must be HH:MM on a 24-hour clock, e.g. '07:30'")
        days = []
        for day in args.get("weekdays") or []:
            if str(day).lower() not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}")
            days.append(WEEKDAYS.index(str(day).lower()))
        label = str(args.get("label") or "")
        item = self.book.add_alarm(int(m[1]), int(m[2]), tuple(days), label)
        return {"set": self._pending(item), "pending": len(self.book.pending())}

    def _cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("all") is True:
            gone = self.book.cancel_all()
            return {"cancelled": [self._brief(i) for i in gone]}
        if args.get("id") is not None:
            item = self.book.cancel(str(args["id"]))
            if item is None:
                return {"error": f"no pending timer or alarm with id {args['id']!r}"}
            return {"cancelled": [self._brief(item)]}
        if label := str(args.get("label") or "").strip().lower():
            hits = [i for i in self.book.pending() if i.label.lower() == label]
            for i in hits:
                self.book.cancel(i.id)
            if not hits:
                return {"error": f"no pending timer or alarm labelled {label!r}"}
            return {"cancelled": [self._brief(i) for i in hits]}
        raise ValueError("give 'id', 'label' or all=true")

    def news(self) -> tuple[str, set[tuple[str, float]]]:
        """A note for the next conversation on what rang or was missed in the last hour and has
        not been told yet ("" when nothing), and the keys to mark told once it went out."""
        self.book.refresh()
        untold = self.book.untold(RECENT_S)
        if not untold:
            return "", set()
        now = self.book.clock().wall
        said = "; ".join(f"the {d.item.name} {self._done(d, now)['said']}" for d in untold)
        note = (
            f"Device note (not said by the user): since the last conversation {said}. Mention "
            "this briefly at the start of your first answer, once."
        )
        return note, {d.key for d in untold}

    def told(self, keys: set[tuple[str, float]]) -> None:
        """The note from news() went out with a session that opened."""
        if keys:
            self.book.mark_told(keys)

    def listing(self) -> dict[str, Any]:
        """Pending items and the last hour's outcomes (what list_timers answers)."""
        now = self.book.clock().wall
        recent = [d for d in self.book.history() if now - d.at_wall <= RECENT_S]
        return {
            "pending": [self._pending(i) for i in self.book.pending()],
            "recent": [self._done(d, now) for d in recent if d.outcome is not Outcome.CANCELLED],
        }

    def _brief(self, item: Item) -> dict[str, Any]:
        return {"id": item.id, "kind": item.kind.value, "name": item.name}

    def _pending(self, item: Item) -> dict[str, Any]:
        out = self._brief(item) | {"label": item.label}
        if item.kind is Kind.TIMER:
            left = -item.late_s(self.book.clock())
            out |= {"left": describe_left(left), "left_s": round(max(0.0, left), 1)}
        else:
            at = dt.datetime.fromtimestamp(item.next_at, self.book.tz)
            out |= {"rings_at": at.strftime("%A %H:%M")}
            if item.weekdays:
                out["repeats"] = [WEEKDAYS[d] for d in item.weekdays]
        return out

    def _done(self, d: Done, now: float) -> dict[str, Any]:
        ago = describe_left(now - d.due_wall)
        what = "went off" if d.outcome is Outcome.RANG else "was missed (the device was off)"
        return self._brief(d.item) | {"outcome": d.outcome.value, "said": f"{what} {ago} ago"}


def _number(args: dict[str, Any], name: str, default: float) -> float:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"'{name}' must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"'{name}' must be a finite number >= 0, not {value!r}")
    return number
