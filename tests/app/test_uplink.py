"""The uplink's splice and the conversation's silence window, as pure functions (no asyncio)."""

from __future__ import annotations

import numpy as np

from device.app.conversation import ANSWER_WAIT_S, silence_window
from device.app.turns import TurnPhase
from device.app.uplink import VOICE_RMS, before, live_start, unsent, voiced
from device.config import ConversationConfig
from device.events import AudioBlock


def block(start: int, n: int = 320, level: int = 0) -> AudioBlock:
    return AudioBlock(np.full(n, level, np.int16).tobytes(), start)


def test_a_block_is_sent_whole_in_part_or_not_at_all_after_what_went_before() -> None:
    b = block(1000)
    assert unsent(b, None) is b and unsent(b, 1000) is b and unsent(b, 900) is b
    tail = unsent(b, 1100)
    assert tail is not None and tail.start == 1100 and tail.end == b.end == 1320
    assert unsent(b, 1320) is None and unsent(b, 5000) is None


def test_pre_roll_stops_where_the_queue_begins() -> None:
    preroll = [block(s) for s in (0, 320, 640, 960)]
    assert [b.start for b in before(preroll, 640)] == [0, 320]
    queued = [block(960), block(1280)]
    # the first block offered to the queue wins, even if the echo gate withheld it
    assert live_start(700, queued, 1280) == 700
    assert live_start(None, queued, 1280) == 960
    assert live_start(None, [], 1280) == 1280
    assert live_start(None, [], None) is None


def test_voiced_is_the_blocks_loudness_together() -> None:
    loud = int(VOICE_RMS * 1.5)
    assert voiced([block(0, level=loud)])
    assert not voiced([block(0, level=loud // 4), block(320)])
    assert voiced([block(0, level=loud), block(320, level=loud)])
    assert not voiced([])


def test_the_silence_window_waits_for_an_answer_the_server_owes() -> None:
    cfg = ConversationConfig(no_speech_timeout_s=6, follow_up_s=8)
    assert silence_window(cfg, answered=False, phase=TurnPhase.QUIET) == 6
    assert silence_window(cfg, answered=True, phase=TurnPhase.QUIET) == 8
    assert silence_window(cfg, answered=True, phase=TurnPhase.HEARD) == ANSWER_WAIT_S
    assert silence_window(cfg, answered=False, phase=TurnPhase.ANSWERING) == 6
