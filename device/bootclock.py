"""A moment on three clocks (wall, boot id, CLOCK_BOOTTIME), so durations survive clock jumps.

A Pi has no real-time clock: its wall clock starts wherever fake-hwclock or timesyncd left it and
jumps (by minutes to years) at the first NTP sync. CLOCK_BOOTTIME (seconds since boot, counting
suspend, never set by NTP) does not jump, but restarts at every boot; the kernel's boot id tells
boots apart. `Instant.seconds_since` combines them:
- same boot: boottime now - boottime then (immune to clock jumps);
- an earlier boot: the wall-clock difference, but at least the time since this boot (a clock that
  is still behind cannot make an old moment look recent);
- no boot id known: the wall-clock difference.
Used for the resumption handle's age (device.live.handles) and timers (device.timers).
No project imports, no vendor imports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Instant:
    """A moment on three clocks: wall (unix s), the boot it happened in, seconds since that boot."""

    wall: float
    boot_id: str | None = None
    boottime: float | None = None

    def same_boot(self, other: Instant) -> bool:
        """Both moments are in the same boot and carry a boottime."""
        return (
            self.boot_id is not None
            and self.boot_id == other.boot_id
            and self.boottime is not None
            and other.boottime is not None
        )

    def seconds_since(self, then: Instant) -> float:
        """Seconds from `then` to this instant (>= 0), robust to wall-clock jumps (module doc)."""
        wall = self.wall - then.wall
        if then.boot_id is None or self.boot_id is None:
            return max(0.0, wall)
        if self.same_boot(then):
            assert self.boottime is not None and then.boottime is not None
            return max(0.0, self.boottime - then.boottime)
        return max(wall, self.boottime or 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"wall": self.wall, "boot_id": self.boot_id, "boottime": self.boottime}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instant:
        """The inverse of to_dict (KeyError/TypeError/ValueError when it is not one)."""
        boot_id, boottime = data.get("boot_id"), data.get("boottime")
        return cls(
            float(data["wall"]),
            None if boot_id is None else str(boot_id),
            None if boottime is None else float(boottime),
        )


_boot_id: str | None = None


def _read_boot_id() -> str | None:
    global _boot_id
    if _boot_id is None:
        try:
            _boot_id = BOOT_ID_PATH.read_text(encoding="ascii").strip() or None
        except OSError:
            return None
    return _boot_id


def now() -> Instant:
    """The system's clocks now."""
    try:
        boottime: float | None = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        boottime = None
    return Instant(time.time(), _read_boot_id(), boottime)


TIME_ERROR = 5
"""adjtimex(2)'s answer while the kernel counts the clock as unsynchronized (STA_UNSYNC)."""


def clock_synchronized() -> bool | None:
    """Whether the kernel counts the wall clock as synchronized, i.e. an NTP client
    (systemd-timesyncd, chrony) has set it since boot; None when it cannot be asked."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, 208 bytes; modes 0: read only
        state = int(libc.adjtimex(timex))
    except (OSError, AttributeError):  # not Linux
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
