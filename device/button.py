"""The hardware button (gpiozero) as ButtonPressed / ButtonReleased / ButtonHeld events.

gpiozero calls back on its own threads; the callbacks only hand the event to the asyncio loop
with `call_soon_threadsafe`. A release after a hold is not a short press, so it is not reported
as ButtonReleased (the hold already did its job: toggled mute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from device.config import ButtonConfig
from device.events import ButtonHeld, ButtonPressed, ButtonReleased

log = logging.getLogger(__name__)

ButtonEvent = ButtonPressed | ButtonReleased | ButtonHeld


class HardwareButton:
    """One push button; `on_event` is called on the loop for every press, short release and hold."""

    def __init__(
        self,
        cfg: ButtonConfig,
        pin_factory: Any,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[ButtonEvent], None],
    ) -> None:
        from gpiozero import Button

        self._loop = loop
        self._on_event = on_event
        self._lock = threading.Lock()
        self._held = False
        self._button = Button(
            cfg.pin,
            pull_up=cfg.pull_up,
            bounce_time=cfg.bounce_s or None,
            hold_time=cfg.hold_s,
            pin_factory=pin_factory,
        )
        self._button.when_pressed = self._pressed
        self._button.when_held = self._was_held
        self._button.when_released = self._released

    def _hand_over(self, event: ButtonEvent) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _pressed(self) -> None:
        with self._lock:
            self._held = False
        self._hand_over(ButtonPressed())

    def _was_held(self) -> None:
        with self._lock:
            self._held = True
        self._hand_over(ButtonHeld())

    def _released(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if not held:
            self._hand_over(ButtonReleased())

    def close(self) -> None:
        """Release the pin."""
        self._button.close()
