"""What the appliance remembers: mute across restarts, and the last fatal session failure.

A wake-up while an auth, quota or config failure is still fresh answers at once with that error's
sound and LED instead of dialling the service again (and hanging, or burning more quota).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.config import LiveConfig
from device.events import ErrorKind
from device.statefile import StateFile

log = logging.getLogger(__name__)

MUTE_FILE = "muted"


class MuteStore:
    """`<state_dir>/muted` exists while the microphone is muted (device.statefile: written
    atomically off the event loop; on a full or read-only state_dir mute holds in memory, across
    a reload too, and a warning names the directory)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / MUTE_FILE
        self._file = StateFile.at(self.path)

    def load(self) -> bool:
        """True when mute was on."""
        try:
            return self._file.read() is not None
        except OSError as exc:
            log.warning("cannot read the mute state in %s: %s", self.path.parent, exc)
            return self.path.exists()

    def save(self, muted: bool) -> None:
        """Persist the mute state (never fatal: mute works now whatever the disk says)."""
        self._file.set("1\n" if muted else None)


@dataclass(frozen=True, slots=True)
class Remembered:
    """A fatal failure and until when wake-ups are answered with it."""

    kind: ErrorKind
    message: str
    until: float


class FailureMemory:
    """Remembers auth/quota/config failures for a while; transient kinds are not remembered."""

    def __init__(self, live: LiveConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # A rejected key or model will not fix itself quickly: wake-ups within retry_max_s answer
        # with the remembered error without dialling. After that the next wake-up tries again,
        # with the key read again (a corrected live.api_key_file or GEMINI_API_KEY is used then;
        # a systemd credential is copied at start: `systemctl restart livespeaker`). Quota waits
        # for its own backoff.
        self._hold_s = {
            ErrorKind.BAD_KEY: live.retry_max_s,
            ErrorKind.CONFIG: live.retry_max_s,
            ErrorKind.QUOTA: live.quota_backoff_s,
        }
        self._last: Remembered | None = None

    def failed(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        """Note a session failure (only fatal kinds are kept)."""
        hold = self._hold_s.get(kind)
        if hold is None:
            return
        if retry_after is not None:
            hold = max(hold, retry_after) if kind is ErrorKind.QUOTA else hold
        self._last = Remembered(kind, message, self._clock() + hold)

    def succeeded(self) -> None:
        """A session opened: forget the failure."""
        self._last = None

    def forget(self) -> None:
        """Forget (e.g. after a config reload)."""
        self._last = None

    def blocking(self) -> Remembered | None:
        """The failure that should answer a wake-up now, if any."""
        if self._last and self._clock() >= self._last.until:
            self._last = None
        return self._last
