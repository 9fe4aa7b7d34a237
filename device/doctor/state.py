"""Check: the state dir is writable, how old the saved conversation (resumption handle) is, and
which timers and alarms are pending (and missed lately)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus

NAME = "state"


def _writable(d: Path) -> str | None:
    """None when a file can be created, synced and removed in d; else why not."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=d)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return f"{d}: {exc.strerror or exc}"
    return None


def check(ctx: DoctorContext) -> CheckResult:
    """Write a temp file in state_dir; report the saved handle's age against live.resume_window_s."""
    d = Path(ctx.cfg.state_dir)
    numbers: dict[str, Any] = {"state_dir": str(d)}
    why = _writable(d)
    if why:
        return CheckResult(NAME, CheckStatus.FAIL, f"state dir not writable: {why}", numbers)
    age = handle_age_s(d)
    window = ctx.cfg.live.resume_window_s
    numbers["handle_age_s"] = None if age is None else round(age, 1)
    numbers["resume_window_s"] = window
    if age is None:
        handle = "no saved conversation"
    elif age <= window:
        handle = f"saved conversation {age:.0f} s old (resumed if used within {window:.0f} s)"
    else:
        handle = f"saved conversation {age:.0f} s old: expired, the next one starts fresh"
    timers = _timers(ctx, numbers)
    return CheckResult(NAME, CheckStatus.PASS, f"{d} writable; {handle}; {timers}", numbers)


def _timers(ctx: DoctorContext, numbers: dict[str, Any]) -> str:
    """Pending timers and alarms (the next one named), those missed in the last day, and whether
    the wall clock alarms ring by is synchronized."""
    from device.bootclock import clock_synchronized
    from device.timers.book import TimerBook
    from device.timers.cmd import due_text
    from device.timers.model import Outcome

    book = TimerBook(ctx.cfg.state_dir, grace_s=ctx.cfg.timers.grace_s)
    pending = book.pending()
    wall = book.clock().wall
    missed = [
        d for d in book.history() if d.outcome is Outcome.MISSED and wall - d.at_wall <= 24 * 3600
    ]
    numbers["timers_pending"] = len(pending)
    numbers["timers_missed_24h"] = len(missed)
    text = "no timers or alarms pending"
    if pending:
        first = pending[0]
        text = (
            f"{len(pending)} timer(s)/alarm(s) pending, next: {first.name} {due_text(book, first)}"
        )
    if missed:
        text += f"; {len(missed)} missed in the last day ({', '.join(d.item.name for d in missed)})"
    synced = clock_synchronized()
    numbers["clock_synchronized"] = synced
    if synced is False:  # a Pi has no real-time clock: until NTP syncs, alarms are set by none
        text += (
            "; the clock is not synchronized (NTP) yet: alarms cannot be set until it is, "
            "timers run on the boot clock"
        )
    return text


def handle_age_s(state_dir: Path) -> float | None:
    """Age of the saved resumption handle in state_dir, or None when there is none."""
    from device.live.handles import HandleStore

    saved = HandleStore(state_dir).load()
    return None if saved is None else saved.age_s
