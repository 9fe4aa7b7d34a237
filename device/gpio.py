"""The one place that chooses gpiozero's pin factory, shared by the LEDs and the button."""

from __future__ import annotations

import glob
import logging
from importlib.metadata import entry_points
from typing import Any

from device.config import ConfigError, GpioConfig

log = logging.getLogger(__name__)


def has_gpio_chip() -> bool:
    """True when the kernel exposes a GPIO character device (a Pi, or any board with GPIO)."""
    return bool(glob.glob("/dev/gpiochip*"))


def make_pin_factory(cfg: GpioConfig) -> Any:
    """A gpiozero pin factory for [gpio] pin_factory: auto, mock, or a factory name (lgpio, ...).

    `auto` gives gpiozero's own default on a board with a GPIO chip and mock pins elsewhere, so
    the daemon runs (LEDs and button simulated) on a machine with no GPIO at all.
    """
    name = cfg.pin_factory
    if name == "auto":
        name = "" if has_gpio_chip() else "mock"
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        log.info("GPIO: mock pins (no GPIO chip, or [gpio] pin_factory = mock)")
        return MockFactory(pin_class=MockPWMPin)
    if name == "":
        from gpiozero import Device

        return Device._default_pin_factory()
    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name in (name, name.lower()):
            return ep.load()()
    known = sorted({ep.name for ep in entry_points(group="gpiozero_pin_factories")})
    raise ConfigError(
        "gpio.pin_factory",
        [f"gpio.pin_factory: unknown factory {name!r} (auto, mock, {', '.join(known)})"],
    )
