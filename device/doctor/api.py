"""Check: an API key is present and the configured endpoint accepts it (a real setup round-trip)."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from device.apikey import find_api_key
from device.config import LiveConfig
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, Status
from device.events import ErrorKind

NAME = "api"


def classify(exc: BaseException) -> ErrorKind:
    """Which kind of failure a connect attempt ended with (see docs: close codes of the service)."""
    from google.genai import errors
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, errors.APIError):
        text = f"{exc.message or ''} {exc.details or ''}".lower()
        if "api key" in text or exc.code in (401, 403):
            return ErrorKind.BAD_KEY
        if "quota" in text or "exhausted" in text or exc.code == 429:
            return ErrorKind.QUOTA
        if exc.code == 1008 and "not found" in text:
            return ErrorKind.CONFIG
        if exc.code == 1007:
            return ErrorKind.CONFIG
        return ErrorKind.SERVER
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        return ErrorKind.BAD_KEY if code in (401, 403) else ErrorKind.SERVER
    return ErrorKind.NO_NETWORK


async def _round_trip(live: LiveConfig, key: str) -> float:
    """Connect, send setup, wait for setupComplete; seconds it took."""
    from google import genai
    from google.genai import types

    client_args: dict[str, Any] = {}
    if live.ca_file:
        client_args["ssl"] = ssl.create_default_context(cafile=live.ca_file)
    http = types.HttpOptions(
        base_url=live.base_url or None, api_version=live.api_version, async_client_args=client_args
    )
    client = genai.Client(api_key=key, http_options=http)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
    t0 = time.perf_counter()
    async with asyncio.timeout(live.connect_timeout_s):
        async with client.aio.live.connect(model=live.model, config=config):
            return time.perf_counter() - t0


def check(ctx: DoctorContext) -> CheckResult:
    """Find the key (never shown), then open one Live session and close it."""
    live = ctx.cfg.live
    endpoint = live.base_url or "Google (generativelanguage.googleapis.com)"
    key = find_api_key(live)
    if key is None:
        return CheckResult(
            NAME,
            Status.FAIL,
            "no API key: systemd credential api-key, live.api_key_file, $GEMINI_API_KEY or $GOOGLE_API_KEY",
            {"key_present": False, "endpoint": endpoint},
        )
    numbers: dict[str, Any] = {
        "key_present": True,
        "key_source": key.source,
        "endpoint": endpoint,
        "model": live.model,
    }
    try:
        seconds = asyncio.run(_round_trip(live, key.value))
    except Exception as exc:  # every failure is a result here, classified for the user
        kind = ErrorKind.NO_NETWORK if isinstance(exc, TimeoutError) else classify(exc)
        numbers["error_kind"] = kind.value
        reason = str(exc) or type(exc).__name__
        return CheckResult(
            NAME, Status.FAIL, f"{kind.value}: {endpoint} refused the session: {reason}", numbers
        )
    numbers["setup_ms"] = round(seconds * 1000, 1)
    return CheckResult(
        NAME,
        Status.PASS,
        f"key from {key.source} accepted by {endpoint} ({seconds * 1000:.0f} ms to setupComplete)",
        numbers,
    )
