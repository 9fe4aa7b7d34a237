"""What the demo prints: state changes with the LEDs drawn from the mock pins, transcripts, latency.

Colour only on a terminal; piped output (CI, tests) gets plain text with the same content.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

from device.app.states import Status, status_line
from device.config import Config, LedMode
from device.doctor.gpio import configured_pins
from device.events import TurnTranscribed


class Panel:
    """Prints one line per event; reads LED levels from the pin factory."""

    def __init__(self, cfg: Config, factory: Any, out: TextIO = sys.stdout) -> None:
        self._cfg = cfg
        self._factory = factory
        self._out = out
        self._color = out.isatty()
        self._t0 = time.monotonic()
        self._leds = [(r, p) for r, p in configured_pins(cfg) if r != "button"]
        self.turns: list[tuple[str, str]] = []
        self.states: list[str] = []

    def say(self, text: str) -> None:
        """A timestamped line (on a terminal: above the live LED line)."""
        clear = "\r\033[K" if self._color else ""
        self._out.write(f"{clear}[{time.monotonic() - self._t0:6.2f}s] {text}\n")
        self._out.flush()

    async def live(self, period_s: float = 0.1) -> None:
        """On a terminal: redraw the LEDs in place, so blinking and pulsing show (a task)."""
        if not self._color:
            return
        while True:
            state = self.states[-1] if self.states else "starting"
            self._out.write(f"\r\033[K   now: {state:<10} {self.leds()}")
            self._out.flush()
            await asyncio.sleep(period_s)

    def leds(self) -> str:
        """The LEDs as text: a coloured dot on a terminal, pin levels otherwise."""
        levels = {role: float(self._factory.pin(pin).state) for role, pin in self._leds}
        if not self._cfg.leds.active_high:
            levels = {k: 1.0 - v for k, v in levels.items()}
        if self._cfg.leds.mode is LedMode.RGB:
            r, g, b = (levels[k] for k in ("led_red", "led_green", "led_blue"))
            text = f"LED rgb({r:.2f},{g:.2f},{b:.2f})"
            if self._color:
                rgb = ";".join(str(round(v * 255)) for v in (r, g, b))
                dot = f"\033[38;2;{rgb}m●\033[0m" if r + g + b > 0 else "○"
                text = f"{dot} {text}"
            return text
        if not levels:
            return "no LEDs"
        return " ".join(f"{role.removeprefix('led_')}={v:.2f}" for role, v in levels.items())

    def status(self, status: Status) -> None:
        """A state change: state, LEDs, the systemd status line."""
        if self.states and self.states[-1] == status.state.value:
            return
        self.states.append(status.state.value)
        phrase = self._cfg.wakeword.model.replace("_", " ")
        self.say(f"state {status.state.value:<10} {status_line(status, phrase):<28} {self.leds()}")

    def turn(self, turn: TurnTranscribed) -> None:
        """A finished turn's transcripts (printing them is the demo's product; no log gets them)."""
        self.turns.append((turn.heard, turn.answered))
        self.say(f"you said:  {turn.heard!r}")
        self.say(f"assistant: {turn.answered!r}")
