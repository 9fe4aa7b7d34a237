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
from device.failures import hold_s
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
        self._live = live
        # How long is the failure policy's (device.failures). After a hold the next wake-up tries
        # again, with the key read again (a corrected live.api_key_file or GEMINI_API_KEY is
        # used then; a systemd credential is copied at start: `systemctl restart livespeaker`).
        self._last: Remembered | None = None

    def failed(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        """Note a session failure (only the kinds the failure policy holds are kept)."""
        hold = hold_s(kind, self._live, retry_after)
        if hold is None:
            return
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
