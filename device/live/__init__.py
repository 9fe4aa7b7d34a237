"""The Gemini Live session engine: connection setup, resumption, goAway handover, typed errors."""

from device.live.errors import (
    Backoff,
    BadKeyError,
    ConfigurationError,
    HandleRejectedError,
    LiveError,
    NetworkError,
    ProtocolError,
    QuotaError,
    RetryPolicy,
    ServerError,
    classify,
)
from device.live.handles import HandleStore, SavedHandle
from device.live.session import LiveClient, LiveSession, SessionStats

__all__ = [
    "Backoff",
    "BadKeyError",
    "ConfigurationError",
    "HandleRejectedError",
    "HandleStore",
    "LiveClient",
    "LiveError",
    "LiveSession",
    "NetworkError",
    "ProtocolError",
    "QuotaError",
    "RetryPolicy",
    "SavedHandle",
    "ServerError",
    "SessionStats",
    "classify",
]
