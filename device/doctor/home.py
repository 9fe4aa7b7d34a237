"""Check: the home's MQTT broker ([mqtt]): reachable with the configured credentials, and which
other speakers it knows (their retained availability)."""

from __future__ import annotations

import asyncio
import contextlib

from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus, Number

NAME = "home"
LISTEN_S = 1.0
"""How long retained availability messages are collected."""


def check(ctx: DoctorContext) -> CheckResult:
    """SKIP without [mqtt] host; WARN when the broker cannot be reached (the speaker works alone)."""
    cfg = ctx.cfg.mqtt
    if not cfg.host:
        return CheckResult(NAME, CheckStatus.SKIP, "no [mqtt] host: this speaker works alone")
    from device.home.link import CredentialsError
    from device.home.topics import speaker_id

    try:
        online = asyncio.run(_online(ctx))
    except CredentialsError as exc:
        return CheckResult(NAME, CheckStatus.FAIL, str(exc))
    except Exception as exc:  # aiomqtt.MqttError, OSError: reported, not raised
        return CheckResult(
            NAME,
            CheckStatus.WARN,
            f"broker {cfg.host}:{cfg.port} unreachable ({exc}): this speaker answers every wake "
            "word alone and Home Assistant does not see it",
        )
    me = speaker_id(cfg.speaker_id)
    others = sorted(s for s, up in online.items() if up and s != me)
    numbers: dict[str, Number] = {"speaker_id": me, "other_speakers_online": others}
    detail = f"connected to {cfg.host}:{cfg.port} as {me}; " + (
        f"other speakers online: {', '.join(others)}" if others else "no other speaker online"
    )
    return CheckResult(NAME, CheckStatus.PASS, detail, numbers)


async def _online(ctx: DoctorContext) -> dict[str, bool]:
    from device.home import topics
    from device.home.link import client_for

    cfg = ctx.cfg.mqtt
    found: dict[str, bool] = {}
    ident = f"livespeaker-doctor-{topics.speaker_id(cfg.speaker_id)}"
    async with client_for(cfg, ident, None, None) as c:
        await c.subscribe(f"{cfg.topic_prefix}/+/availability")
        with contextlib.suppress(TimeoutError):  # retained messages come at once: then stop
            async with asyncio.timeout(LISTEN_S):
                async for m in c.messages:
                    speaker = str(m.topic).split("/")[-2]
                    found[speaker] = m.payload in (topics.ONLINE, topics.ONLINE.encode())
    return found
