"""goAway in the middle of an answer: the replacement connection remembers the turn in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from device.events import OutputTranscribed, SessionResumed
from device.privacy.ledger import Ending, Ledger
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.live.helpers import client_for, events_until, text_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HANDED_OVER = SessionResumed(True, None)


async def until(cond: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll cond() every 5 ms, bounded."""
    async with asyncio.timeout(within_s):
        for _ in iter(cond, True):
            await asyncio.sleep(0.005)


async def test_go_away_mid_answer_resumes_with_the_handle_that_covers_the_turn(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    # Like the service: audio faster than real time, turnComplete held until it has played
    # (the story: ~15 s of speech), goAway with time enough to wait for the turn's handle.
    simulator.realtime_factor = 5.0
    simulator.hold_turn_complete = True
    simulator.go_away_time_left_s = 30.0
    simulator.inject(Fault(FaultAction.GO_AWAY, When.MID_REPLY, after_chunks=3))
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("Tell me a story")
        story = await events_until(conv, within_s=60)
        if HANDED_OVER not in story:
            story += await events_until(conv, lambda e: e == HANDED_OVER)
        await conv.send_text("What did I just ask?")
        recall = await events_until(conv)
    assert "everyone in the house was delighted" in text_of(story, OutputTranscribed)
    said = text_of(recall, OutputTranscribed)
    print(f"after the handover the model says: {said!r}")
    assert 'Before this you asked: "Tell me a story".' in said
    first, second = simulator.connections
    assert second.resumed_from == first.handles[-1]
    assert first.close_code == 1000  # closed by the client, before the deadline


async def test_audio_held_during_a_handover_leaves_only_while_streaming_is_allowed(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    """Audio sent while the replacement connection opens is held, then delivered on it: only if
    the streaming gate (what the LEDs show) still allows it at that moment."""
    streaming = True
    chunks = [np.full(320, i, np.int16).tobytes() for i in range(60)]
    client = client_for(simulator, tmp_path)
    async with client.session(may_send=lambda: streaming) as conv:
        simulator.inject(Fault(FaultAction.SLOW_SETUP, When.SETUP, after_s=1.5))  # the replacement
        simulator.inject(Fault(FaultAction.GO_AWAY, When.AUDIO_IN, after_chunks=30))
        for chunk in chunks[:40]:
            await conv.send_audio(chunk)
            await asyncio.sleep(0.004)
        # The handover has begun: the replacement is dialled.
        await until(lambda: len(simulator.connections) == 2)
        for chunk in chunks[40:50]:  # held back for the new connection ...
            await conv.send_audio(chunk)
        streaming = False  # ... and the answer starts before it is up (half duplex)
        await events_until(conv, lambda e: e == HANDED_OVER)
        streaming = True
        for chunk in chunks[50:]:
            await conv.send_audio(chunk)
        await until(lambda: len(simulator.connections[1].audio_in()) == 10)
    first, second = simulator.connections
    print(f"held back then withheld: {conv.stats.audio_chunks_withheld} chunks")
    assert second.audio_in() == chunks[50:]
    sent_first = len(first.audio_in())
    assert first.audio_in() == chunks[:sent_first]
    assert conv.stats.audio_chunks_withheld == 50 - sent_first >= 10
    # The upload ledger (on disk, written off the loop): one record per connection, one
    # conversation, each with exactly the audio its connection received.
    ledger = Ledger(client.cfg.state_dir)
    await until(lambda: len(ledger.records()) == 2)
    one, two = ledger.records()
    assert one.conversation == two.conversation and (one.connection, two.connection) == (1, 2)
    assert (one.ended, two.ended) == (Ending.HANDOVER, Ending.CLOSED)
    assert not one.resumed and two.resumed
    for rec, sim_conn in ((one, first), (two, second)):
        assert rec.audio_s * 32000 == pytest.approx(len(b"".join(sim_conn.audio_in())), abs=1)
        assert rec.bytes_up == len(b"".join(sim_conn.audio_in()))
