"""Check: the GPIO pin factory loads and every configured LED/button pin can be claimed."""

from __future__ import annotations

from typing import Any

from device.config import Config, LedMode
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus
from device.gpio import make_pin_factory

NAME = "gpio"


def configured_pins(cfg: Config) -> list[tuple[str, int]]:
    """(role, BCM pin) for every wired part, in config order."""
    leds = cfg.leds
    pins: list[tuple[str, int]] = []
    if leds.mode in (LedMode.SINGLE, LedMode.PWM):
        pins.append(("led", leds.pin))
    elif leds.mode is LedMode.RGB:
        pins += [
            ("led_red", leds.red_pin),
            ("led_green", leds.green_pin),
            ("led_blue", leds.blue_pin),
        ]
    elif leds.mode is LedMode.PER_STATE:
        pins += [
            ("led_listening", leds.listening_pin),
            ("led_responding", leds.responding_pin),
            ("led_error", leds.error_pin),
        ]
    if cfg.button.enabled:
        pins.append(("button", cfg.button.pin))
    return pins


def busy(exc: BaseException) -> bool:
    """True when a pin (or device) failed only because another user holds it."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "busy" in text or "inuse" in text or "in use" in text


def check(ctx: DoctorContext) -> CheckResult:
    """Load the factory, claim each pin once (button: read its idle level), then release."""
    from gpiozero import Button, DigitalOutputDevice

    pins = configured_pins(ctx.cfg)
    numbers: dict[str, Any] = {f"{role}_pin": pin for role, pin in pins}
    seen: dict[int, str] = {}
    for role, pin in pins:
        if pin in seen:
            return CheckResult(
                NAME,
                CheckStatus.FAIL,
                f"pin {pin} is used for both {seen[pin]} and {role}",
                numbers,
            )
        seen[pin] = role
    try:
        factory = ctx.pin_factory or make_pin_factory(ctx.cfg.gpio)
    except Exception as exc:
        return CheckResult(
            NAME, CheckStatus.FAIL, f"pin factory {ctx.cfg.gpio.pin_factory!r}: {exc}", numbers
        )
    kind = type(factory).__name__
    numbers["factory"] = kind
    warn: list[str] = []
    try:
        for role, pin in pins:
            try:
                dev: Any
                if role == "button":
                    dev = Button(pin, pull_up=ctx.cfg.button.pull_up, pin_factory=factory)
                    if dev.is_pressed:
                        warn.append(
                            f"button on GPIO{pin} reads pressed at rest (stuck or miswired?)"
                        )
                else:
                    dev = DigitalOutputDevice(
                        pin, active_high=ctx.cfg.leds.active_high, pin_factory=factory
                    )
                dev.close()
            except Exception as exc:  # busy pin, no permission, not a GPIO
                if busy(exc):  # the running daemon holds its pins: they exist and work
                    warn.append(f"{role} GPIO{pin} is in use (by the running daemon?)")
                    continue
                return CheckResult(NAME, CheckStatus.FAIL, f"{role} GPIO{pin}: {exc}", numbers)
    finally:
        if ctx.pin_factory is None:
            factory.close()
    mock = "mock pins (no GPIO here)" if kind.startswith("Mock") else f"{kind}"
    detail = (
        f"{mock}; claimed " + ", ".join(f"{r} GPIO{p}" for r, p in pins)
        if pins
        else f"{mock}; nothing wired"
    )
    if warn:
        return CheckResult(NAME, CheckStatus.WARN, f"{detail}; {'; '.join(warn)}", numbers)
    return CheckResult(NAME, CheckStatus.PASS, detail, numbers)
