"""goAway in the middle of an answer: the replacement connection remembers the turn in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.events import OutputTranscribed, SessionResumed
from device.simulator.faults import Action, Fault, When
from device.simulator.server import LiveSimulator
from tests.live.helpers import client_for, events_until, text_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HANDED_OVER = SessionResumed(True, None)


async def test_go_away_mid_answer_resumes_with_the_handle_that_covers_the_turn(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    # Like the service: audio faster than real time, turnComplete held until it has played
    # (the story: ~15 s of speech), goAway with time enough to wait for the turn's handle.
    simulator.realtime_factor = 5.0
    simulator.hold_turn_complete = True
    simulator.go_away_time_left_s = 30.0
    simulator.inject(Fault(Action.GO_AWAY, When.MID_REPLY, after_chunks=3))
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
