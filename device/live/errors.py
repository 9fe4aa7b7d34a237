"""Typed Live API failures, a classifier for what the SDK raises, and the retry policy.

The SDK reports a websocket close as `google.genai.errors.APIError` with `.code` = close code and
the reason in `.details`; an HTTP rejection of the upgrade as `websockets.InvalidStatus`; a close
before setup as a raw `ConnectionClosed`; a frame it cannot parse as `ValueError`.
"""

from __future__ import annotations

import random
import ssl

from google.genai import errors as genai_errors
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from device.config import LiveConfig
from device.events import ErrorKind
from device.failures import POLICY, Retry, is_transient


class LiveError(Exception):
    """A Live session failed. `retry_after` is seconds to wait, or None: don't retry by yourself."""

    kind: ErrorKind = ErrorKind.SERVER

    def __init__(
        self, message: str, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True when reconnecting after a backoff may work (device.failures)."""
        return is_transient(self.kind)


class BadKeyError(LiveError):
    """The API key was rejected (1007): retrying fast will not help."""

    kind = ErrorKind.BAD_KEY


class ConfigurationError(LiveError):
    """The configuration is wrong (unknown model, invalid setup, wrong endpoint)."""

    kind = ErrorKind.CONFIG


class QuotaError(LiveError):
    """Quota or rate limit exhausted (1011 "exceeded your quota"/"exhausted"): long backoff."""

    kind = ErrorKind.QUOTA


class ServerError(LiveError):
    """The service failed or closed the connection (1011 internal/unavailable, 1008 deadline...)."""

    kind = ErrorKind.SERVER


class NetworkError(LiveError):
    """The service cannot be reached or the connection dropped (DNS, TCP, TLS, timeouts, 1006)."""

    kind = ErrorKind.NO_NETWORK


class DeadLinkError(NetworkError):
    """The connection is open but nothing arrives where data must come (or no pong came)."""


class HandleRejectedError(ConfigurationError):
    """The server refused the resumption handle; the client drops it and starts fresh."""


class ProtocolError(ServerError):
    """The server sent a frame the client could not use (malformed, oversized)."""


KEEPALIVE_REASON = "keepalive ping timeout"
"""What websockets itself closes with (1011) when no pong came: our verdict, not the server's."""


def close_error(code: int | None, reason: str, live: LiveConfig) -> LiveError:
    """The typed error for a websocket close code and reason."""
    low = reason.lower()
    text = f"{code}: {reason}" if reason else f"close code {code}"
    if KEEPALIVE_REASON in low:
        return DeadLinkError(f"the server stopped answering pings ({text})", code=code)
    if code == 1007:
        if "api key" in low:
            return BadKeyError(f"the API key was rejected ({text})", code=code)
        if "handle" in low:
            return HandleRejectedError(f"resumption handle rejected ({text})", code=code)
        return ConfigurationError(f"the server rejected the session setup ({text})", code=code)
    if code == 1008 and ("not found" in low or "not supported" in low):
        return ConfigurationError(
            f"live.model = {live.model!r} is not available: {reason}", code=code
        )
    if code == 1011 and ("quota" in low or "exhausted" in low):
        return QuotaError(f"quota exhausted ({text})", code=code)
    if code == 1006 or code is None:
        return NetworkError(f"connection dropped ({text})", code=1006)
    if code == 1009:
        return ProtocolError(f"a server frame exceeded the size limit ({text})", code=code)
    return ServerError(f"the server closed the session ({text})", code=code)


def classify(exc: BaseException, live: LiveConfig) -> LiveError:
    """Map anything connect/send/receive raised to a LiveError (LiveErrors pass through)."""
    if isinstance(exc, LiveError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        # The SDK says 1006 when the server sent no close frame; if the client itself closed
        # (e.g. 1009: a server frame over the 1 MiB limit), the wrapped exception tells.
        ctx = exc.__context__
        if (
            exc.code == 1006
            and isinstance(ctx, ConnectionClosed)
            and ctx.sent
            and not ctx.rcvd
            and ctx.sent.code != 1000
        ):
            return close_error(ctx.sent.code, ctx.sent.reason, live)
        reason = exc.details if isinstance(exc.details, str) else (exc.message or str(exc.details))
        return close_error(exc.code, reason, live)
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return BadKeyError(f"the API key was rejected (HTTP {status})", code=status)
        if status == 404:
            return ConfigurationError(
                f"no Live API at live.base_url/live.api_version (HTTP 404): {exc}", code=status
            )
        if status == 429:
            return QuotaError("rate limited (HTTP 429)", code=status)
        return ServerError(f"websocket upgrade refused (HTTP {status})", code=status)
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd or exc.sent
        return close_error(frame.code if frame else None, frame.reason if frame else "", live)
    if isinstance(exc, ssl.SSLError):
        return NetworkError(f"TLS failed (check live.ca_file): {exc}")
    if isinstance(exc, TimeoutError):
        return NetworkError(f"timed out ({exc or 'no answer from the server'})")
    if isinstance(exc, OSError | InvalidHandshake):
        return NetworkError(f"cannot reach the Live API: {exc}")
    if isinstance(exc, ValueError | TypeError):
        return ProtocolError(f"malformed server message: {str(exc)[:200]}")
    return ServerError(f"unexpected failure: {type(exc).__name__}: {exc}")


class Backoff:
    """Exponential backoff with jitter: initial, 2x, 4x ... capped at maximum, each +-jitter."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (counts one more failure)."""
        base = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return max(
            0.0, min(self.maximum, base * self._rng.uniform(1 - self.jitter, 1 + self.jitter))
        )

    def reset(self) -> None:
        """A connection worked: start again from `initial`."""
        self.failures = 0


class RetryPolicy:
    """Sets `retry_after` on an error as device.failures says: the backoff for a transient
    kind, quota_backoff_s for quota, none for the rest (key, config: no retry by itself)."""

    def __init__(self, live: LiveConfig, rng: random.Random | None = None) -> None:
        self.live = live
        self.backoff = Backoff(live.retry_initial_s, live.retry_max_s, rng=rng)

    def apply(self, err: LiveError) -> LiveError:
        """Fill in err.retry_after according to its kind; returns err."""
        if err.transient:
            err.retry_after = self.backoff.next()
        elif POLICY[err.kind].retry is Retry.QUOTA:
            err.retry_after = self.live.quota_backoff_s
        else:
            err.retry_after = None
        return err

    def succeeded(self) -> None:
        """A session was set up: the next transient failure starts from retry_initial_s."""
        self.backoff.reset()
