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
    # One exception, on purpose: a ring over a paused answer looks like any ring (what the user
    # must see is that a timer rings; the answer going on afterwards is heard).
    assert STATE_PATTERNS[State.RINGING_OVER_ANSWER] == STATE_PATTERNS[State.RINGING]
    shared = (State.ERROR, State.RINGING_OVER_ANSWER)
    patterns = [STATE_PATTERNS[s] for s in State if s not in shared]
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
    leds.show(Status(State.LISTENING), streaming=True)
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
    leds.show(Status(State.LISTENING), streaming=True)
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
    leds.show(Status(State.LISTENING), streaming=True)
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
    leds.show(Status(State.LISTENING), streaming=True)
    assert leds.pattern == STATE_PATTERNS[State.LISTENING]
    assert factory.pins == {}


# --- the privacy light: streaming has a look nothing else has, in every mode -------------------

STATUSES = [Status(s) for s in State if s is not State.ERROR]
STATUSES += [Status(State.ERROR, k) for k in ErrorKind]
WINDOW_S = 2.0
"""Longer than any steady phase of a non-streaming look (the muted double blink's 1.2 s dark)."""


def wiring(mode: LedMode, n: int) -> tuple[LedsConfig, tuple[int, ...], tuple[int, ...]]:
    """The n-th LED set of a mode on its own pins: its config, all its pins, the pins whose
    look means streaming (per_state: the listening LED; otherwise all of them)."""
    if mode is LedMode.RGB or mode is LedMode.PER_STATE:
        a, b, c = 3 * n + 2, 3 * n + 3, 3 * n + 4
        if mode is LedMode.RGB:
            return LedsConfig(mode=mode, red_pin=a, green_pin=b, blue_pin=c), (a, b, c), (a, b, c)
        cfg = LedsConfig(mode=mode, listening_pin=a, responding_pin=b, error_pin=c)
        return cfg, (a, b, c), (a,)
    return LedsConfig(mode=mode, pin=n + 2), (n + 2,), (n + 2,)


def levels_seen(factory: Any, combos: list[tuple[Status, bool]], mode: LedMode) -> list[Any]:
    """Show each (status, streaming) on its own LEDs at once; for each, the set of levels every
    relevant pin took during WINDOW_S (read from the mock pins' recorded histories)."""
    per_batch = 8 if mode in (LedMode.RGB, LedMode.PER_STATE) else 24  # GPIO2..27
    seen: list[Any] = []
    for start in range(0, len(combos), per_batch):
        batch = combos[start : start + per_batch]
        shown = []
        for n, (status, streaming) in enumerate(batch):
            cfg, _, relevant = wiring(mode, n)
            leds = Leds(cfg, factory)
            leds.show(status, streaming)
            shown.append((leds, relevant))
        time.sleep(0.1)  # let blink threads make their first write
        for _, relevant in shown:
            for p in relevant:
                factory.pin(p).clear_states()
        time.sleep(WINDOW_S)
        for leds, relevant in shown:
            seen.append(
                tuple(
                    frozenset(round(float(s.state), 2) for s in factory.pin(p).states)
                    for p in relevant
                )
            )
            leds.close()
        factory.reset()
    return seen


@pytest.mark.parametrize("mode", [LedMode.SINGLE, LedMode.PWM, LedMode.RGB, LedMode.PER_STATE])
def test_streaming_look_is_unique_in_every_mode(factory: Any, mode: LedMode) -> None:
    combos = [(s, True) for s in STATUSES] + [(s, False) for s in STATUSES]
    seen = dict(zip(combos, levels_seen(factory, combos, mode), strict=True))
    streaming_looks = {seen[(s, True)] for s in STATUSES}
    assert len(streaming_looks) == 1, f"streaming looks differ by status: {streaming_looks}"
    (look,) = streaming_looks
    assert all(len(levels) == 1 for levels in look), f"streaming is not steady: {look}"
    assert any(levels != {0.0} for levels in look), "streaming is dark"
    same = [(s.state.value, s.error) for s in STATUSES if seen[(s, False)] == look]
    assert same == [], f"{mode.value}: these look like streaming without streaming: {same}"


def test_none_mode_streaming_pattern_is_unique() -> None:
    streaming = pattern_for(Status(State.IDLE), True, LedMode.NONE)
    assert all(pattern_for(s, False, LedMode.NONE) != streaming for s in STATUSES)


def test_single_led_muted_is_a_slow_double_blink(factory: Any) -> None:
    leds = Leds(LedsConfig(mode=LedMode.SINGLE, pin=25), factory)
    pin = factory.pin(25)
    leds.show(Status(State.MUTED))
    time.sleep(0.05)
    pin.clear_states()
    time.sleep(3.2)
    leds.show(Status(State.IDLE))  # ends the double blink: the pin stays dark after this
    assert pin.state == 0
    time.sleep(0.4)
    assert pin.state == 0
    leds.close()
    # MockPin timestamps are the time since the previous change: each is how long the
    # state before it lasted.
    hist = pin.states
    phases = [(prev.state, cur.timestamp) for prev, cur in itertools.pairwise(hist)][1:-1]
    ons = [d for v, d in phases if v]
    offs = sorted(d for v, d in phases if not v)
    # expected: on 0.15, off 0.15, on 0.15, off 1.2, ... (loose: the CPU is shared)
    assert len(ons) >= 2 and max(ons) < 0.5, phases
    assert offs[0] < 0.5 and offs[-1] > 0.9, phases
