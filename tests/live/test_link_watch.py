"""When the server owes data: the dead-link rule, fed with the SDK's own server-content types."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from google.genai import types

from device.live.link import STALL_S, Link
from device.live.turns import TurnLog

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _link(clock: Clock) -> Link:
    session: Any = None  # never used: no message is sent and the link is not closed here
    return Link(session, contextlib.AsyncExitStack(), clock)


def _content(link: Link, **fields: Any) -> None:
    link.received()
    TurnLog().content(link, types.LiveServerContent(**fields), None)


def test_a_question_heard_and_not_answered_is_overdue_after_the_stall_time() -> None:
    clock = Clock()
    link = _link(clock)
    clock.now += 60.0
    assert link.overdue() is None  # nothing in flight: silence is fine
    _content(link, input_transcription=types.Transcription(text="what time is it"))
    clock.now += STALL_S - 0.5
    assert link.overdue() is None
    clock.now += 1.0
    assert link.overdue() == pytest.approx(0.5)


def test_after_the_answer_audio_the_server_may_wait_while_it_plays() -> None:
    clock = Clock()
    link = _link(clock)
    four_s = b"\0\0" * 24000 * 4
    audio = types.Blob(data=four_s, mime_type="audio/pcm;rate=24000")
    _content(link, model_turn=types.Content(parts=[types.Part(inline_data=audio)]))
    _content(link, generation_complete=True)
    clock.now += 4.0 + STALL_S - 0.5  # turnComplete comes about when the audio has played
    assert link.overdue() is None
    clock.now += 1.0
    assert link.overdue() == pytest.approx(0.5)
    _content(link, turn_complete=True)
    clock.now += 60.0
    assert link.overdue() is None


def test_an_interrupted_answer_owes_nothing_more() -> None:
    clock = Clock()
    link = _link(clock)
    _content(link, output_transcription=types.Transcription(text="Once upon"))
    _content(link, interrupted=True)
    clock.now += 60.0
    assert link.overdue() is None
