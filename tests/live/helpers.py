"""Helpers for Live session tests: drain events with a bound, build a client for the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from device.apikey import ApiKey
from device.events import SessionEvent, TurnCompleted
from device.live import LiveClient, LiveSession
from device.simulator.server import LiveSimulator
from tests.conftest import SIM_API_KEY, sim_config

KEY = ApiKey(SIM_API_KEY, "test")


def client_for(sim: LiveSimulator, tmp: Path, **live: object) -> LiveClient:
    """A LiveClient configured for the simulator (state in tmp)."""
    return LiveClient(sim_config(sim, tmp, **live), KEY)


async def events_until(
    conv: LiveSession,
    stop: Callable[[SessionEvent], bool] = lambda e: isinstance(e, TurnCompleted),
    within_s: float = 30.0,
) -> list[SessionEvent]:
    """Events up to and including the first one for which stop() is true."""
    out: list[SessionEvent] = []

    async def run() -> None:
        async for ev in conv.events():
            out.append(ev)
            if stop(ev):
                return
        raise AssertionError(f"events ended early: {out}")

    await asyncio.wait_for(run(), within_s)
    return out


def text_of(events: list[SessionEvent], kind: type) -> str:
    """Concatenated .text of events of one kind."""
    return "".join(getattr(e, "text", "") for e in events if isinstance(e, kind))
