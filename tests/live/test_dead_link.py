"""A dead link (the server goes silent, the socket stays open) is noticed while data must come."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from device.events import ErrorKind, ModelAudio, SessionEvent
from device.live import LiveError
from device.simulator.faults import Action, Fault, When
from device.simulator.server import LiveSimulator
from tests.live.helpers import client_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _stall_mid_answer(simulator: LiveSimulator, tmp_path: Path) -> tuple[LiveError, float]:
    """Ask for a story, the server stalls after 3 audio chunks: the error and the time to it."""
    simulator.realtime_factor = 4.0
    simulator.inject(Fault(Action.STALL, When.MID_REPLY, after_chunks=3))
    client = client_for(simulator, tmp_path)
    t_stall = 0.0
    with pytest.raises(LiveError) as info:
        async with client.session() as conv:
            await conv.send_text("Tell me a story")

            async def read() -> None:
                nonlocal t_stall
                seen: list[SessionEvent] = []
                async for ev in conv.events():
                    seen.append(ev)
                    if (
                        isinstance(ev, ModelAudio)
                        and sum(isinstance(e, ModelAudio) for e in seen) == 3
                    ):
                        t_stall = time.monotonic()

            await asyncio.wait_for(read(), 90)
    assert t_stall, "the answer never started"
    return info.value, time.monotonic() - t_stall


async def test_a_server_that_stalls_mid_answer_is_no_network_within_ten_seconds(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    err, noticed_s = await _stall_mid_answer(simulator, tmp_path)
    print(f"dead link noticed {noticed_s:.1f} s after the last audio chunk: {err}")
    assert "stall" in simulator.connections[0].sent
    assert err.kind is ErrorKind.NO_NETWORK
    assert err.transient
    assert noticed_s < 15.0  # the watchdog's 8 s (+ playback of 0.3 s), with room for load
