"""sd_notify(3) messages to systemd; every method is a no-op when not started by systemd.

systemd reads these from the datagram socket in $NOTIFY_SOCKET: `READY=1` ends the start job of a
Type=notify unit, `STATUS=` is the line `systemctl status` shows, `WATCHDOG=1` feeds WatchdogSec=,
`RELOADING=1` (with MONOTONIC_USEC, as systemd >= 253 expects) and `STOPPING=1` mark reload and stop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Sender = Callable[[str], bool]
"""Sends one notify message; returns whether it was delivered."""


def _systemd_sender() -> Sender:
    import systemd.daemon  # Linux-only dependency (systemd-python)

    def send(message: str) -> bool:
        return bool(systemd.daemon.notify(message))

    return send


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The WatchdogSec= of our unit in seconds, or None when no watchdog is armed for this process."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000


class Notifier:
    """Tell systemd about our lifecycle. Without $NOTIFY_SOCKET nothing is sent."""

    def __init__(
        self, send: Sender | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        """True when a notify socket exists (we run under systemd with Type=notify)."""
        self._send = send
        self._failures = 0
        self._last_status = ""

    def _notify(self, message: str) -> None:
        if not self.enabled:
            return
        if self._send is None:
            self._send = _systemd_sender()
        if not self._send(message) and self._failures == 0:
            # Once is enough: the socket is gone or refuses us (NotifyAccess=); keep running.
            log.warning("sd_notify failed for %r; further failures are not logged", message)
            self._failures += 1

    def ready(self, status: str | None = None) -> None:
        """Start-up complete (or a reload finished): READY=1, optionally with a new STATUS."""
        msg = "READY=1"
        if status is not None:
            self._last_status = status
            msg += f"\nSTATUS={status}"
        self._notify(msg)

    def status(self, text: str) -> None:
        """The one-line status `systemctl status` shows; repeated identical lines are not resent."""
        if text == self._last_status:
            return
        self._last_status = text
        self._notify(f"STATUS={text}")

    def reloading(self) -> None:
        """A configuration reload starts; call ready() when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> None:
        """We are shutting down (SIGTERM received)."""
        msg = "STOPPING=1"
        if status is not None:
            msg += f"\nSTATUS={status}"
        self._notify(msg)

    def watchdog(self) -> None:
        """Keep-alive for WatchdogSec=; send only when the process is known to work (see Watchdog)."""
        self._notify("WATCHDOG=1")

    def watchdog_trigger(self) -> None:
        """Ask systemd to act as if the watchdog expired now (WATCHDOG=trigger)."""
        self._notify("WATCHDOG=trigger")
