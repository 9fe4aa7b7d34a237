"""A watchdog feeder that pings systemd only while the audio path really makes progress.

A blind timer would keep a wedged daemon alive forever. This one sends WATCHDOG=1 every half
WatchdogSec= only if (a) the event loop is running — the pings come from a task on it, so a blocked
loop sends nothing — and (b) a progress counter (e.g. microphone blocks delivered to the loop)
advanced since the last tick. A dead PortAudio thread or a stuck loop therefore stops the pings and
systemd restarts the service after WatchdogSec=.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from device.service.notify import Notifier, watchdog_interval

log = logging.getLogger(__name__)

Progress = Callable[[], int]
"""Returns a counter that grows while the watched path works (read on the loop, must not block)."""


class Watchdog:
    """Run `await Watchdog(...).run()` as a named task after READY=1; cancel it on shutdown."""

    def __init__(
        self,
        notifier: Notifier,
        progress: Progress,
        interval_s: float,
        *,
        what: str = "microphone blocks",
    ) -> None:
        self._notifier = notifier
        self._progress = progress
        self.period_s = interval_s / 2
        """Time between checks (and pings): half the systemd watchdog interval."""
        self._what = what
        self.pings = 0
        """WATCHDOG=1 messages sent so far."""
        self.stalls = 0
        """How often the progress counter stopped advancing."""

    @classmethod
    def from_environment(
        cls,
        notifier: Notifier,
        progress: Progress,
        environ: Mapping[str, str] | None = None,
        **kw: str,
    ) -> Watchdog | None:
        """A Watchdog for $WATCHDOG_USEC, or None when systemd armed no watchdog for us."""
        interval = watchdog_interval(environ)
        if interval is None or not notifier.enabled:
            return None
        return cls(notifier, progress, interval, **kw)

    async def run(self) -> None:
        """Check and ping forever (until cancelled)."""
        log.info("watchdog: pinging every %.1f s while %s advance", self.period_s, self._what)
        last = self._progress()
        stalled_at: float | None = None
        tick = time.monotonic()
        while True:
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            late = now - tick - self.period_s
            tick = now
            if late > self.period_s:
                log.warning(
                    "event loop was blocked for about %.1f s",
                    late,
                    extra={"LOOP_LAG_S": round(late, 1)},
                )
            current = self._progress()
            if current != last:
                last = current
                self._notifier.watchdog()
                self.pings += 1
                if stalled_at is not None:
                    log.info(
                        "%s flow again after %.1f s; watchdog pings resumed",
                        self._what,
                        now - stalled_at,
                    )
                    stalled_at = None
            elif stalled_at is None:
                stalled_at = now - self.period_s
                self.stalls += 1
                log.warning(
                    "audio path stalled: no %s for %.1f s; withholding watchdog pings",
                    self._what,
                    self.period_s,
                    extra={"WATCHDOG": "withheld"},
                )


class StartupPinger:
    """WATCHDOG=1 while the daemon rebuilds its parts after a reload, for at most `limit_s`.

    Between RELOADING=1 and READY=1 the progress-fed Watchdog is gone with the old parts, but
    systemd's watchdog stays armed: loading the wake-word model and waiting for audio to flow can
    take longer than a short WatchdogSec=. This pinger covers that gap; a rebuild that hangs past
    `limit_s` stops the pings and systemd restarts the service. Not used before the first
    READY=1: systemd arms the watchdog only then.

        pinger = StartupPinger.from_environment(notifier, limit_s=60)
        pinger.start()          # on the loop, before the rebuild
        ...; notifier.ready(); pinger.stop()
    """

    def __init__(self, notifier: Notifier, interval_s: float, limit_s: float) -> None:
        self._notifier = notifier
        self.period_s = interval_s / 2
        self.limit_s = limit_s
        self.pings = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(
        cls, notifier: Notifier, limit_s: float, environ: Mapping[str, str] | None = None
    ) -> StartupPinger | None:
        """A pinger for $WATCHDOG_USEC, or None when systemd armed no watchdog for us."""
        interval = watchdog_interval(environ)
        if interval is None or not notifier.enabled:
            return None
        return cls(notifier, interval, limit_s)

    def start(self) -> None:
        """Begin pinging (from a task on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="startup-ping")

    def stop(self) -> None:
        """Stop pinging (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.limit_s
        while loop.time() < end:
            self._notifier.watchdog()
            self.pings += 1
            await asyncio.sleep(self.period_s)
        log.error("still not ready after %.0f s: watchdog pings stop", self.limit_s)
