"""Failures the simulator can be told to cause, so every error path can be driven from a test."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FaultAction(Enum):
    """What goes wrong."""

    GO_AWAY = "go_away"
    """Send goAway{timeLeft}; close with 1011 "Deadline expired" when the time is up."""
    DROP = "drop"
    """Cut the TCP connection without a close frame (the client sees 1006)."""
    CLOSE_QUOTA = "close_quota"
    """Close with 1011 and the quota reason."""
    CLOSE_INTERNAL = "close_internal"
    """Close with 1011 "Internal error occurred."."""
    CLOSE_UNAVAILABLE = "close_unavailable"
    """Close with 1011 "The service is currently unavailable."."""
    MALFORMED = "malformed"
    """Send a frame that is not JSON."""
    UNKNOWN = "unknown"
    """Send a JSON frame with no field the SDK knows."""
    OVERSIZED = "oversized"
    """Send a frame larger than the client's 1 MiB limit."""
    SLOW_SETUP = "slow_setup"
    """Hold setupComplete back for N seconds (`slow_setup@setup:N`): a slow service or network."""
    FREEZE = "freeze"
    """Frozen Wi-Fi for `duration_s`: nothing sent or read meanwhile (a ping waits for its pong,
    a close frame for its answer), then everything held is delivered late and the link goes on."""
    STALL = "stall"
    """Go silent with the socket open (a router that drops packets): send nothing more, read
    nothing more (so no pong and no reply to the client's close frame), until the client gives up."""


class When(Enum):
    """When it goes wrong on a connection."""

    SETUP = "setup"
    """Instead of setupComplete for close/drop actions; right after it for the others."""
    MID_REPLY = "mid_reply"
    """After `after_chunks` audio chunks of the next reply were sent."""
    AUDIO_IN = "audio_in"
    """After `after_chunks` realtime audio chunks were received on the connection."""
    AFTER_S = "after_s"
    """`after_s` seconds after setupComplete (a schedule)."""


@dataclass
class Fault:
    """A failure armed for the next `times` connections (whose key matches, if `key` is set)."""

    action: FaultAction
    when: When = When.MID_REPLY
    key: str | None = None
    after_chunks: int = 0
    after_s: float = 0.0
    times: int = 1
    duration_s: float = 10.0
    """How long a FREEZE lasts."""

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """From the CLI form ACTION[@WHEN[:N[:D]]], e.g. `go_away@after_s:30`, `drop@mid_reply:3`,
        `freeze@after_s:5:30` (D: a freeze's duration in seconds)."""
        action, _, rest = spec.partition("@")
        when, _, n = rest.partition(":")
        n, _, d = n.partition(":")
        fault = cls(FaultAction(action), When(when) if when else When.MID_REPLY, times=1 << 30)
        if d:
            fault.duration_s = float(d)
        if n:
            if fault.when is When.AFTER_S or fault.action is FaultAction.SLOW_SETUP:
                fault.after_s = float(n)
            else:
                fault.after_chunks = int(n)
        return fault
