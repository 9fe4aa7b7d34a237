"""Status LEDs (gpiozero): one distinct pattern per state and per error kind.

Patterns are data (`STATE_PATTERNS`, `ERROR_PATTERNS`, `MONO_PATTERNS`); `Leds.show()` renders
one on whatever is wired ([leds] mode: none, single, pwm, rgb, per_state). The orchestrator calls
`show()` before it starts streaming and after it stops, so "listening" is lit whenever microphone
audio leaves the device, and idle/muted are only shown when nothing does.

The privacy light: in every mode the streaming look (rgb: solid blue; single/pwm: solid on;
per_state: the listening LED solid on) is shown when, and only when, `streaming` is true. No other
status has it: a listening status without streaming shows as connecting (audio held on the device).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from device.app.states import MUTED_STATES, State, Status
from device.config import LedMode, LedsConfig
from device.events import ErrorKind

log = logging.getLogger(__name__)

Colour = tuple[float, float, float]


class Look(Enum):
    """How an LED shows a pattern."""

    OFF = "off"
    """Dark."""
    SOLID = "solid"
    """Steadily on."""
    BLINK = "blink"
    """Hard on/off with on_s/off_s."""
    PULSE = "pulse"
    """Fading in and out (PWM/RGB); plain LEDs blink with the same times."""
    DOUBLE_BLINK = "double_blink"
    """Two flashes (on_s long, on_s apart), then off_s dark: a look for one-colour LEDs."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """What the LEDs show: a look, an RGB colour, and the on/off (or fade) times."""

    look: Look
    colour: Colour = (1.0, 1.0, 1.0)
    on_s: float = 0.0
    off_s: float = 0.0


OFF = Pattern(Look.OFF, (0.0, 0.0, 0.0))
BLUE: Colour = (0.0, 0.0, 1.0)
CYAN: Colour = (0.0, 1.0, 1.0)
RED: Colour = (1.0, 0.0, 0.0)
ORANGE: Colour = (1.0, 0.4, 0.0)
YELLOW: Colour = (1.0, 1.0, 0.0)
MAGENTA: Colour = (1.0, 0.0, 1.0)
WHITE: Colour = (1.0, 1.0, 1.0)
GREEN: Colour = (0.0, 1.0, 0.0)

STATE_PATTERNS: dict[State, Pattern] = {
    State.STARTING: Pattern(Look.PULSE, WHITE, 0.5, 0.5),
    State.IDLE: OFF,  # nothing leaves the device: dark
    State.CONNECTING: Pattern(Look.BLINK, BLUE, 0.1, 0.1),
    State.LISTENING: Pattern(Look.SOLID, BLUE),  # the only look that means "audio is sent"
    State.RESPONDING: Pattern(Look.PULSE, CYAN, 0.4, 0.4),
    State.MUTED: Pattern(Look.SOLID, RED),
    State.RINGING: Pattern(Look.BLINK, GREEN, 0.25, 0.25),  # the only green: a timer or alarm
    State.RINGING_OVER_ANSWER: Pattern(Look.BLINK, GREEN, 0.25, 0.25),
    State.RINGING_MUTED: Pattern(Look.BLINK, GREEN, 0.25, 0.75),
}

ERROR_PATTERNS: dict[ErrorKind, Pattern] = {
    ErrorKind.NO_NETWORK: Pattern(Look.BLINK, ORANGE, 0.5, 0.5),
    ErrorKind.BAD_KEY: Pattern(Look.BLINK, MAGENTA, 0.15, 0.15),
    ErrorKind.QUOTA: Pattern(Look.BLINK, YELLOW, 0.5, 0.5),
    ErrorKind.SERVER: Pattern(Look.BLINK, ORANGE, 0.15, 0.15),
    ErrorKind.CONFIG: Pattern(Look.BLINK, MAGENTA, 0.5, 0.5),
    ErrorKind.AUDIO_DEVICE: Pattern(Look.BLINK, RED, 0.15, 0.15),
}
# One-colour LEDs (single, pwm) cannot tell red from blue: where the colour alone makes a look
# unique, they get their own. Muted is a slow double blink, never the solid on that means streaming.
MONO_PATTERNS: dict[State, Pattern] = {
    State.MUTED: Pattern(Look.DOUBLE_BLINK, RED, 0.15, 1.2),
}
# A plain LED cannot show colour: it tells the kinds apart by rhythm.
SINGLE_ERROR_TIMES: dict[ErrorKind, tuple[float, float]] = {
    ErrorKind.NO_NETWORK: (1.0, 1.0),
    ErrorKind.BAD_KEY: (0.1, 0.1),
    ErrorKind.QUOTA: (0.1, 0.9),
    ErrorKind.SERVER: (0.3, 0.3),
    ErrorKind.CONFIG: (0.9, 0.1),
    ErrorKind.AUDIO_DEVICE: (0.05, 0.45),
}


def pattern_for(status: Status, streaming: bool = False, mode: LedMode = LedMode.RGB) -> Pattern:
    """The pattern for a status on LEDs of `mode`; the listening look if and only if streaming."""
    if streaming:
        return STATE_PATTERNS[State.LISTENING]
    state = status.state
    if state is State.ERROR:
        return ERROR_PATTERNS[status.error or ErrorKind.SERVER]
    if state is State.LISTENING:  # not streaming: what is said is held on the device
        state = State.CONNECTING
    if mode in (LedMode.SINGLE, LedMode.PWM) and state in MONO_PATTERNS:
        return MONO_PATTERNS[state]
    return STATE_PATTERNS[state]


class Leds:
    """The wired LEDs, driven by status; all devices share the given pin factory."""

    def __init__(self, cfg: LedsConfig, pin_factory: Any) -> None:
        self._cfg = cfg
        self._devices: dict[str, Any] = {}
        self._current: tuple[Status, bool] | None = None
        hi = cfg.active_high
        if cfg.mode is LedMode.SINGLE:
            from gpiozero import LED

            self._devices["led"] = LED(cfg.pin, active_high=hi, pin_factory=pin_factory)
        elif cfg.mode is LedMode.PWM:
            from gpiozero import PWMLED

            self._devices["led"] = PWMLED(cfg.pin, active_high=hi, pin_factory=pin_factory)
        elif cfg.mode is LedMode.RGB:
            from gpiozero import RGBLED

            self._devices["rgb"] = RGBLED(
                cfg.red_pin, cfg.green_pin, cfg.blue_pin, active_high=hi, pin_factory=pin_factory
            )
        elif cfg.mode is LedMode.PER_STATE:
            from gpiozero import LED

            for name, pin in (
                ("listening", cfg.listening_pin),
                ("responding", cfg.responding_pin),
                ("error", cfg.error_pin),
            ):
                self._devices[name] = LED(pin, active_high=hi, pin_factory=pin_factory)

    @property
    def pattern(self) -> Pattern:
        """The pattern being shown now (OFF before the first show())."""
        return pattern_for(*self._current, self._cfg.mode) if self._current else OFF

    def show(self, status: Status, streaming: bool = False) -> None:
        """Render a status (no-op when it is already shown, so blinking is not restarted)."""
        if self._current == (status, streaming):
            return
        self._current = (status, streaming)
        mode = self._cfg.mode
        if mode is LedMode.PER_STATE:
            self._show_per_state(status, streaming)
        elif mode is not LedMode.NONE:
            self._render(pattern_for(status, streaming, mode), status)

    def off(self) -> None:
        """All LEDs dark (on shutdown)."""
        self._current = None
        for dev in self._devices.values():
            _stop_source(dev)
            dev.off()

    def close(self) -> None:
        """Dark, then release the pins."""
        self.off()
        for dev in self._devices.values():
            dev.close()

    def _render(self, p: Pattern, status: Status) -> None:
        dev = self._devices.get("rgb") or self._devices["led"]
        rgb = "rgb" in self._devices
        pwm = rgb or self._cfg.mode is LedMode.PWM
        _stop_source(dev)
        if p.look is Look.OFF:
            dev.off()
        elif p.look is Look.SOLID:
            if rgb:
                dev.color = p.colour
            else:
                dev.on()
        elif p.look is Look.DOUBLE_BLINK:
            # on, off, on (on_s each), then dark for off_s; gpiozero's source thread plays it.
            dark = [0] * max(1, round(p.off_s / p.on_s))
            dev.source_delay = p.on_s
            dev.source = itertools.cycle([1, 0, 1, *dark])
        elif p.look is Look.PULSE and pwm:
            kw = {"on_color": p.colour} if rgb else {}
            dev.pulse(fade_in_time=p.on_s, fade_out_time=p.off_s, **kw)
        else:
            on_s, off_s = p.on_s, p.off_s
            if not rgb and status.state is State.ERROR and status.error:
                on_s, off_s = SINGLE_ERROR_TIMES[status.error]
            kw = {"on_color": p.colour} if rgb else {}
            dev.blink(on_time=on_s, off_time=off_s, **kw)

    def _show_per_state(self, status: Status, streaming: bool) -> None:
        listening, responding, error = (
            self._devices["listening"],
            self._devices["responding"],
            self._devices["error"],
        )
        state = status.state
        for dev in (listening, responding, error):
            dev.off()
        if streaming:
            listening.on()  # the only way this LED is ever solid on
        elif state in (State.CONNECTING, State.LISTENING):
            listening.blink(on_time=0.1, off_time=0.1)
        if state is State.RESPONDING:
            responding.on()
        elif state is State.STARTING:
            responding.blink(on_time=0.5, off_time=0.5)
        if state in (State.RINGING, State.RINGING_OVER_ANSWER, State.RINGING_MUTED):
            responding.blink(on_time=0.25, off_time=0.25)
        if state in MUTED_STATES:
            error.on()
        elif state is State.ERROR and status.error:
            error.blink(*SINGLE_ERROR_TIMES[status.error])


def _stop_source(dev: Any) -> None:
    """End a double blink (a gpiozero source thread) before anything else drives the LED."""
    if dev.source is not None:
        dev.source = None
