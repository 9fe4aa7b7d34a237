"""The failure policy: one table every reader agrees with, and every kind has a look and a sound."""

from __future__ import annotations

import pytest

from device.app.memory import FailureMemory
from device.app.states import ERROR_LINES
from device.audio.earcons import PATTERNS as SOUNDS
from device.config import LiveConfig
from device.events import ErrorKind
from device.failures import POLICY, Retry, hold_s, is_transient
from device.leds import ERROR_PATTERNS, SINGLE_ERROR_TIMES
from device.live.errors import LiveError, RetryPolicy

pytestmark = pytest.mark.unit


def test_every_kind_has_a_policy_a_look_a_single_led_rhythm_and_a_sound() -> None:
    for kind in ErrorKind:
        assert kind in POLICY and kind in ERROR_PATTERNS and kind in SINGLE_ERROR_TIMES
        assert kind in SOUNDS
        assert ERROR_LINES[kind] == POLICY[kind].line


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_the_session_and_the_appliance_follow_the_policy(kind: ErrorKind) -> None:
    live = LiveConfig(retry_max_s=60.0, quota_backoff_s=300.0)
    err = LiveError("x")
    err.kind = kind
    RetryPolicy(live).apply(err)
    retry = POLICY[kind].retry
    assert err.transient is is_transient(kind) is (retry is Retry.BACKOFF)
    assert (err.retry_after is not None) is (retry in (Retry.BACKOFF, Retry.QUOTA))
    now = [1000.0]
    memory = FailureMemory(live, clock=lambda: now[0])
    memory.failed(kind, "x", err.retry_after)
    held = hold_s(kind, live, err.retry_after)
    assert held == {Retry.HOLD: 60.0, Retry.QUOTA: 300.0}.get(retry)
    remembered = memory.blocking()
    assert (remembered is not None) is (held is not None)
    if held is not None:
        now[0] += held
        assert memory.blocking() is None  # the next wake-up dials again


def test_a_quota_hold_honours_a_longer_wait_the_service_asked_for() -> None:
    live = LiveConfig(quota_backoff_s=300.0)
    assert hold_s(ErrorKind.QUOTA, live, 900.0) == 900.0
    assert hold_s(ErrorKind.QUOTA, live, 10.0) == 300.0
    assert hold_s(ErrorKind.BAD_KEY, live, 900.0) == live.retry_max_s
