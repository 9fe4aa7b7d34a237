"""A dead link (the server goes silent, the socket stays open) is noticed while data must come."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from device.events import ErrorKind, ModelAudio, OutputTranscribed, SessionEvent
from device.live import LiveError
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.live.helpers import client_for, events_until, text_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _stall_mid_answer(simulator: LiveSimulator, tmp_path: Path) -> tuple[LiveError, float]:
    """Ask for a story, the server stalls after 3 audio chunks: the error and the time to it."""
    simulator.realtime_factor = 4.0
    simulator.inject(Fault(FaultAction.STALL, When.MID_REPLY, after_chunks=3))
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


@pytest.mark.timeout(180)
async def test_a_pong_thirty_seconds_late_is_no_false_alarm(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    """Pongs from the service have been seen 8-30 s late: with nothing in flight, a link frozen
    that long (the client's ping waits ~31 s for its pong) stays up and answers afterwards."""
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("Hello? Gemini are you there?")
        await events_until(conv)
        # The first ping goes out 20 s after connecting; it is read (and answered) at ~51 s.
        simulator.inject(Fault(FaultAction.FREEZE, When.AFTER_S, after_s=0.0, duration_s=50.0))
        t0 = time.monotonic()
        async with asyncio.timeout(70):
            for _ in iter(lambda: simulator.connections[0].held_reads > 0, True):
                await asyncio.sleep(0.5)
        thawed_s = time.monotonic() - t0
        await asyncio.sleep(1.0)
        await conv.send_text("What is the capital of France?")
        events = await events_until(conv)
    print(f"link frozen {thawed_s:.1f} s with a ping held; the session stayed up")
    assert "Paris" in text_of(events, OutputTranscribed)
    assert len(simulator.connections) == 1  # no reconnect: the same link answered
