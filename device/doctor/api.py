"""Check: an API key is present and the configured endpoint accepts it (a real setup round-trip).

Uses the live engineer's client setup and error classifier, so the doctor sees exactly what the
daemon would send and names failures the same way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from device.apikey import find_api_key
from device.config import LiveConfig
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus
from device.failures import POLICY

NAME = "api"


async def _round_trip(live: LiveConfig, key: str) -> float:
    """Connect with the daemon's full setup, wait for setupComplete; seconds it took."""
    from device.live.setup import connect_config, make_client

    client = make_client(live, key)
    t0 = time.perf_counter()
    async with (
        asyncio.timeout(live.connect_timeout_s),
        client.aio.live.connect(model=live.model, config=connect_config(live)),
    ):
        return time.perf_counter() - t0


def _record(ctx: DoctorContext, seconds: float) -> None:
    """The connection goes into the upload ledger like every other (no audio, no words)."""
    import secrets

    from device.events import Opened, Trigger
    from device.privacy.ledger import Ending, Ledger, Upload

    Ledger(ctx.cfg.state_dir, ctx.cfg.privacy).add(
        Upload.make(
            Opened(Trigger.DOCTOR),
            opened_at=time.time() - seconds,
            conversation=secrets.token_hex(4),
            connection=1,
            resumed=False,
            duration_s=seconds,
            audio_bytes=0,
            bytes_up=0,
            bytes_down=0,
            ended=Ending.CLOSED,
        )
    )


def check(ctx: DoctorContext) -> CheckResult:
    """Find the key (never shown), then open one Live session and close it."""
    from device.live.errors import classify

    live = ctx.cfg.live
    endpoint = live.base_url or "Google (generativelanguage.googleapis.com)"
    key = find_api_key(live)
    if key is None:
        return CheckResult(
            NAME,
            CheckStatus.FAIL,
            "no API key: systemd credential api-key, live.api_key_file, "
            "$GEMINI_API_KEY or $GOOGLE_API_KEY",
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
    except Exception as exc:  # every failure is a result here, classified like the daemon does
        err = classify(exc, live)
        numbers["error_kind"] = err.kind.value
        numbers["close_code"] = err.code
        policy = POLICY[err.kind]
        numbers["retry"] = policy.retry.value
        return CheckResult(
            NAME,
            CheckStatus.FAIL,
            f"{err.kind.value} ({policy.line}): {endpoint}: {err.message}",
            numbers,
        )
    numbers["setup_ms"] = round(seconds * 1000, 1)
    _record(ctx, seconds)
    return CheckResult(
        NAME,
        CheckStatus.PASS,
        f"key from {key.source} accepted by {endpoint} for {live.model} "
        f"({seconds * 1000:.0f} ms to setupComplete)",
        numbers,
    )
