"""The failure policy: for each kind of failure, what it is called and how the device retries.

    POLICY[ErrorKind.QUOTA].line         # "quota exhausted" (STATUS=, doctor)
    hold_s(ErrorKind.QUOTA, cfg.live)    # how long wake-ups answer with it without dialling
    is_transient(ErrorKind.NO_NETWORK)   # reconnecting after a backoff may work

One table that the Live session (device.live.errors.RetryPolicy: retry_after), the appliance
(device.app.memory.FailureMemory: what a wake-up answers at once; the STATUS= line) and doctor
read. How each kind looks and sounds is presentation and stays with the LEDs and the earcons
(device.leds.ERROR_PATTERNS, device.audio.earcons.PATTERNS), keyed by the same kinds; a test
keeps every kind in every table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from device.config import LiveConfig
from device.events import ErrorKind


class Retry(Enum):
    """How the device goes on after a failure of a kind."""

    BACKOFF = "backoff"
    """Transient: the next wake-up dials again; repeated failures wait an exponential backoff
    (live.retry_initial_s doubling up to live.retry_max_s, with jitter)."""
    HOLD = "hold"
    """Will not fix itself soon (a rejected key, a model the service does not know): wake-ups
    within live.retry_max_s answer with the error at once, without dialling."""
    QUOTA = "quota"
    """As HOLD, for live.quota_backoff_s (or longer, if the service said so)."""
    DEVICE = "device"
    """An audio device: shown until it is back (the supervisors keep reopening it)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What one kind of failure is called and how the device retries after it."""

    line: str
    """The words in the STATUS= line and doctor."""
    retry: Retry


POLICY: dict[ErrorKind, Policy] = {
    ErrorKind.NO_NETWORK: Policy("no network", Retry.BACKOFF),
    ErrorKind.SERVER: Policy("service unavailable", Retry.BACKOFF),
    ErrorKind.BAD_KEY: Policy("API key rejected", Retry.HOLD),
    ErrorKind.CONFIG: Policy("configuration rejected by the service", Retry.HOLD),
    ErrorKind.QUOTA: Policy("quota exhausted", Retry.QUOTA),
    ErrorKind.AUDIO_DEVICE: Policy("audio device missing or busy", Retry.DEVICE),
}


def is_transient(kind: ErrorKind) -> bool:
    """Reconnecting after a backoff may work."""
    return POLICY[kind].retry is Retry.BACKOFF


def hold_s(kind: ErrorKind, live: LiveConfig, retry_after: float | None = None) -> float | None:
    """How long wake-ups answer with this failure without dialling again (None: not held).
    `retry_after`: what the service asked for, which a quota hold honours if it is longer."""
    retry = POLICY[kind].retry
    if retry is Retry.HOLD:
        return live.retry_max_s
    if retry is Retry.QUOTA:
        return max(live.quota_backoff_s, retry_after or 0.0)
    return None
