"""Check: the state dir is writable, and how old the saved conversation (resumption handle) is."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, Status

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
        return CheckResult(NAME, Status.FAIL, f"state dir not writable: {why}", numbers)
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
    return CheckResult(NAME, Status.PASS, f"{d} writable; {handle}", numbers)


def handle_age_s(state_dir: Path) -> float | None:
    """Age of the saved resumption handle in state_dir, or None when there is none."""
    from device.live.handles import HandleStore

    saved = HandleStore(state_dir).load()
    return None if saved is None else saved.age_s
