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
from device.live.session import Conversation, LiveClient, SessionStats

__all__ = [
    "Backoff",
    "BadKeyError",
    "ConfigurationError",
    "Conversation",
    "HandleRejectedError",
    "HandleStore",
    "LiveClient",
    "LiveError",
    "NetworkError",
    "ProtocolError",
    "QuotaError",
    "RetryPolicy",
    "SavedHandle",
    "ServerError",
    "SessionStats",
    "classify",
]
