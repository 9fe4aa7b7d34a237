"""LED patterns on gpiozero mock pins: each state and each error kind looks different."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.states import State, Status
from device.config import LedMode, LedsConfig
from device.events import ErrorKind
from device.leds import ERROR_PATTERNS, STATE_PATTERNS, Leds, Look, pattern_for

pytestmark = pytest.mark.unit


@pytest.fixture
def factory() -> Iterator[Any]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def states(factory: Any, *pins: int) -> tuple[float, ...]:
    return tuple(round(float(factory.pin(p).state), 2) for p in pins)


def sample(factory: Any, pins: tuple[int, ...], seconds: float) -> set[tuple[float, ...]]:
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(states(factory, *pins))
        time.sleep(0.01)
    return seen


def test_every_state_and_error_kind_has_its_own_pattern() -> None:
    patterns = [STATE_PATTERNS[s] for s in State if s is not State.ERROR]
    patterns += [ERROR_PATTERNS[k] for k in ErrorKind]
    assert len(set(patterns)) == len(patterns)


def test_streaming_always_shows_listening() -> None:
    for state in State:
        assert pattern_for(Status(state), streaming=True) == STATE_PATTERNS[State.LISTENING]
    assert pattern_for(Status(State.IDLE)).look is Look.OFF


def test_rgb_pins_follow_states(factory: Any) -> None:
    cfg = LedsConfig(mode=LedMode.RGB, red_pin=17, green_pin=27, blue_pin=22)
    leds = Leds(cfg, factory)
    rgb = (17, 27, 22)
    leds.show(Status(State.IDLE))
    assert states(factory, *rgb) == (0, 0, 0)
    leds.show(Status(State.LISTENING))
    assert states(factory, *rgb) == (0, 0, 1)
    leds.show(Status(State.MUTED))
    assert states(factory, *rgb) == (1, 0, 0)
    leds.show(Status(State.CONNECTING))
    assert sample(factory, rgb, 0.5) >= {(0, 0, 0), (0, 0, 1)}
    leds.show(Status(State.ERROR, ErrorKind.BAD_KEY))
    assert sample(factory, rgb, 0.6) >= {(0, 0, 0), (1, 0, 1)}
    leds.close()


def rhythm(pin: Any) -> tuple[float, float]:
    """The first complete on and off durations in a mock pin's recorded history."""
    hist = [(st.timestamp, st.state) for st in pin.states]
    edges = [(t, v) for (t, v), (_, prev) in zip(hist[1:], hist, strict=False) if v != prev]
    on = next(b[0] - a[0] for a, b in itertools.pairwise(edges) if a[1])
    off = next(b[0] - a[0] for a, b in itertools.pairwise(edges) if not a[1])
    return on, off


def test_single_led_tells_error_kinds_apart_by_rhythm(factory: Any) -> None:
    leds = Leds(LedsConfig(mode=LedMode.SINGLE, pin=25), factory)
    pin = factory.pin(25)
    leds.show(Status(State.LISTENING))
    assert pin.state == 1
    leds.show(Status(State.IDLE))
    assert pin.state == 0
    seen = {}
    for kind in (ErrorKind.BAD_KEY, ErrorKind.CONFIG, ErrorKind.QUOTA):
        pin.clear_states()
        leds.show(Status(State.ERROR, kind))
        time.sleep(2.3)
        seen[kind] = rhythm(pin)
    leds.close()
    # expected on/off: bad key 0.1/0.1, config 0.9/0.1, quota 0.1/0.9 (loose: the CPU is shared)
    assert seen[ErrorKind.BAD_KEY][0] < 0.5 and seen[ErrorKind.BAD_KEY][1] < 0.5
    assert seen[ErrorKind.CONFIG][0] > 0.6 > seen[ErrorKind.CONFIG][1]
    assert seen[ErrorKind.QUOTA][0] < 0.6 < seen[ErrorKind.QUOTA][1]


def test_per_state_leds(factory: Any) -> None:
    cfg = LedsConfig(mode=LedMode.PER_STATE, listening_pin=5, responding_pin=6, error_pin=13)
    leds = Leds(cfg, factory)
    pins = (5, 6, 13)
    leds.show(Status(State.LISTENING))
    assert states(factory, *pins) == (1, 0, 0)
    leds.show(Status(State.RESPONDING))
    assert states(factory, *pins) == (0, 1, 0)
    leds.show(Status(State.RESPONDING), streaming=True)
    assert states(factory, *pins) == (1, 1, 0)
    leds.show(Status(State.MUTED))
    assert states(factory, *pins) == (0, 0, 1)
    leds.show(Status(State.IDLE))
    assert states(factory, *pins) == (0, 0, 0)
    leds.close()


def test_pwm_led_pulses_while_responding(factory: Any) -> None:
    leds = Leds(LedsConfig(mode=LedMode.PWM, pin=25), factory)
    leds.show(Status(State.RESPONDING))
    seen = {v for (v,) in sample(factory, (25,), 0.9)}
    assert len(seen) > 5  # many intermediate brightness levels: a fade, not a blink
    leds.off()
    assert factory.pin(25).state == 0
    leds.close()


def test_none_mode_touches_no_pin(factory: Any) -> None:
    leds = Leds(LedsConfig(mode=LedMode.NONE), factory)
    leds.show(Status(State.LISTENING))
    assert leds.pattern == STATE_PATTERNS[State.LISTENING]
    assert factory.pins == {}
