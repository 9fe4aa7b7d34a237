"""A terminal key acts as the button on the mock pins: tap = press, hold (key repeat) = hold.

Terminals report no key-up, so the button is released when the key's auto-repeat stops: after
FIRST_RELEASE_S for a single tap (longer than the usual repeat delay), REPEAT_RELEASE_S after the
last repeat. `q` stops the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from typing import Any

FIRST_RELEASE_S = 0.6
REPEAT_RELEASE_S = 0.15


class KeyButton:
    """Drives the button's mock pin from stdin (loop thread only)."""

    def __init__(self, pin: Any, pull_up: bool, on_quit: Callable[[], None]) -> None:
        self._pin = pin
        self._pull_up = pull_up
        self._on_quit = on_quit
        self._release: asyncio.TimerHandle | None = None

    def key(self, ch: str) -> None:
        """One character from the terminal."""
        if ch in ("q", "Q", "\x04"):
            self._on_quit()
            return
        loop = asyncio.get_running_loop()
        first = self._release is None
        if first:
            self._pin.drive_low() if self._pull_up else self._pin.drive_high()
        else:
            assert self._release is not None
            self._release.cancel()
        self._release = loop.call_later(FIRST_RELEASE_S if first else REPEAT_RELEASE_S, self._up)

    def _up(self) -> None:
        self._release = None
        self._pin.drive_high() if self._pull_up else self._pin.drive_low()


@contextlib.contextmanager
def keys_as_button(button: KeyButton) -> Iterator[None]:
    """While active: stdin in cbreak mode, each key handed to `button` on the loop."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()
    tty.setcbreak(fd)

    def readable() -> None:
        import os

        data = os.read(fd, 64).decode(errors="replace")
        for ch in data:
            button.key(ch)

    loop.add_reader(fd, readable)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
