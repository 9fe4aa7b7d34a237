"""Ringing through the real appliance and its transition table, with a fake speaker and mock pins:
what starts it, what stops it, mute, the time limit, the volume floor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.appliance import Appliance
from device.app.ports import Parts
from device.app.states import (
    Action,
    AnswerPlayed,
    RingTimedOut,
    State,
    Status,
    status_line,
    step,
)
from device.audio import earcons
from device.config import Config
from device.events import (
    ButtonHeld,
    ButtonPressed,
    ButtonReleased,
    EndCause,
    ModelAudio,
    StopWordHeard,
    TimerRang,
    TurnCompleted,
    WakeDetected,
)
from device.leds import STATE_PATTERNS, Leds
from device.wakeword.preroll import PreRoll
from tests.app.test_appliance import FakeLive, FakeMic, FakeSpeaker, FakeWake, until
from tests.app.test_appliance import appliance as conversation_appliance

pytestmark = pytest.mark.unit
RING = earcons.pcm(earcons.Earcon.RING)
RANG = TimerRang(("1",), ("pasta timer",))
WAKE = WakeDetected("hey_jarvis", 0.9, 16000)


@pytest.fixture
def factory() -> Iterator[Any]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


@asynccontextmanager
async def appliance(
    tmp_path: Path, factory: Any, muted: bool = False, **timers: float
) -> AsyncIterator[tuple[Appliance, FakeSpeaker, Leds]]:
    cfg = Config.model_validate({"state_dir": str(tmp_path), "timers": timers})
    preroll = PreRoll(3.0)
    leds = Leds(cfg.leds, factory)
    mic, speaker = FakeMic(preroll), FakeSpeaker()
    speaker.volume = 10
    parts = Parts(mic, mic, speaker, preroll, FakeWake(), FakeLive(leds), leds)
    app = Appliance(cfg, parts)
    task = asyncio.create_task(app.run(), name="appliance")
    app.started(muted)
    await until(lambda: app.state is (State.MUTED if muted else State.IDLE))
    try:
        yield app, speaker, leds
    finally:
        await app.stop(2.0)
        await asyncio.wait_for(task, 5)
        leds.close()


def rings(speaker: FakeSpeaker) -> int:
    return sum(1 for pcm in speaker.alert if pcm == RING)


def test_the_table_rings_from_everywhere_but_starting() -> None:
    for state in State:
        got = step(Status(state), RANG)
        if state is State.STARTING:
            assert got is None
            continue
        assert got is not None and Action.START_RING in got.actions, state
        if state in (State.MUTED, State.RINGING_MUTED):
            assert got.status.state is State.RINGING_MUTED
        elif state in (State.RESPONDING, State.RINGING_OVER_ANSWER):
            # The answer pauses under the ring: the conversation goes on.
            assert got.status.state is State.RINGING_OVER_ANSWER
            assert got.actions == (Action.START_RING,)
        else:
            assert got.status.state is State.RINGING
    for state in (State.CONNECTING, State.LISTENING):  # the microphone would send the ring
        ends = step(Status(state), RANG)
        assert ends is not None and ends.actions[0] is Action.END_CONVERSATION


def test_over_an_answer_what_stops_the_ring_lets_the_answer_go_on() -> None:
    over = Status(State.RINGING_OVER_ANSWER)
    pressed = step(over, ButtonPressed())
    assert pressed is not None and pressed.status == over and pressed.actions == (Action.STOP_RING,)
    for stop in (ButtonReleased(), WAKE, StopWordHeard(0.97, 16000)):
        got = step(over, stop)
        assert got is not None and got.status.state is State.RESPONDING, stop
        assert got.actions == (Action.STOP_RING,), stop  # no flush: the answer goes on
    # The answer's own end leaves a plain ring; the ring outlasting it ends the conversation.
    played = step(over, AnswerPlayed())
    assert played is not None and played.status.state is State.RINGING
    assert played.actions == (Action.END_CONVERSATION,)
    timed_out = step(over, RingTimedOut())
    assert timed_out is not None and timed_out.status.state is State.IDLE
    assert set(timed_out.actions) == {Action.STOP_RING, Action.END_CONVERSATION}
    held = step(over, ButtonHeld())
    assert held is not None and held.status.state is State.MUTED
    assert Action.END_CONVERSATION in held.actions and Action.STOP_RING in held.actions
    assert status_line(over, "hey jarvis") == (
        "Ringing, answer paused (press the button or say 'stop')"
    )


def test_press_silences_and_the_release_does_not_open_a_conversation() -> None:
    pressed = step(Status(State.RINGING), ButtonPressed())
    assert pressed is not None and pressed.actions == (Action.STOP_RING,)
    assert pressed.status.state is State.RINGING
    released = step(pressed.status, ButtonReleased())
    assert released is not None and released.status.state is State.IDLE
    assert Action.OPEN_SESSION not in released.actions
    woke = step(Status(State.RINGING), WAKE)
    assert woke is not None and woke.status.state is State.IDLE and Action.STOP_RING in woke.actions
    held = step(Status(State.RINGING_MUTED), ButtonHeld())
    assert held is not None and held.status.state is State.IDLE
    stopped = step(Status(State.RINGING), StopWordHeard(0.97, 16000))
    assert stopped is not None and stopped.status.state is State.IDLE
    assert step(Status(State.IDLE), StopWordHeard(0.97, 16000)) is None  # only while ringing
    assert status_line(Status(State.RINGING), "hey jarvis") == (
        "Ringing (press the button or say 'stop')"
    )


def test_ringing_has_its_own_led_pattern() -> None:
    ringing = STATE_PATTERNS[State.RINGING]
    assert STATE_PATTERNS[State.RINGING_OVER_ANSWER] == ringing
    others = [
        p for s, p in STATE_PATTERNS.items() if s not in (State.RINGING, State.RINGING_OVER_ANSWER)
    ]
    assert ringing not in others and ringing.colour == (0.0, 1.0, 0.0)


async def test_rings_repeatedly_at_the_floor_until_a_button_press(
    tmp_path: Path, factory: Any
) -> None:
    async with appliance(tmp_path, factory, volume_floor=60) as (app, speaker, leds):
        app.post(RANG)
        await until(lambda: app.state is State.RINGING)
        assert leds.pattern == STATE_PATTERNS[State.RINGING]
        assert speaker.floor == 60 and speaker.volume == 10  # the set volume stays as it was
        await until(lambda: rings(speaker) >= 4, 10)  # a 1 s cycle, repeated
        assert speaker.alerting
        app.post(ButtonPressed())
        await until(lambda: not speaker.alerting)
        assert rings(speaker) == 0 and speaker.floor == 0
        await asyncio.sleep(1.2)
        assert rings(speaker) == 0  # nothing more was queued
        app.post(ButtonReleased())
        await until(lambda: app.state is State.IDLE)


async def test_rings_while_muted_and_goes_back_to_muted(tmp_path: Path, factory: Any) -> None:
    async with appliance(tmp_path, factory, muted=True) as (app, speaker, _):
        app.post(RANG)
        await until(lambda: app.state is State.RINGING_MUTED)
        await until(lambda: rings(speaker) >= 1)
        app.post(WAKE)  # the microphone is closed: a wake word cannot come, and means nothing
        await asyncio.sleep(0.1)
        assert app.state is State.RINGING_MUTED
        app.post(ButtonPressed())
        app.post(ButtonReleased())
        await until(lambda: app.state is State.MUTED)
        assert rings(speaker) == 0


async def test_stops_by_itself_after_the_time_limit(tmp_path: Path, factory: Any) -> None:
    async with appliance(tmp_path, factory, ring_timeout_s=1.0) as (app, speaker, _):
        app.post(RANG)
        await until(lambda: app.state is State.RINGING)
        await until(lambda: app.state is State.IDLE, 10)
        assert rings(speaker) == 0 and speaker.floor == 0


async def test_a_ring_pauses_the_answer_and_a_press_lets_it_go_on(
    tmp_path: Path, factory: Any
) -> None:
    """A timer that rings while the model answers: the answer is kept (nothing flushed, the
    conversation stays open, what the model still sends is queued behind it) and plays once
    the press stops the ring; then the conversation listens for a follow-up as usual."""
    async with conversation_appliance(tmp_path, factory) as (app, mic, speaker, live):
        app.post(WAKE)
        await until(lambda: app.state is State.LISTENING, feed=mic)
        conv = live.opened[0]
        first, rest = b"\1\0" * 2400, b"\2\0" * 2400
        await conv.server.put(ModelAudio(first))
        await until(lambda: app.state is State.RESPONDING)
        flushes = speaker.flushes
        app.post(RANG)
        await until(lambda: app.state is State.RINGING_OVER_ANSWER)
        await until(lambda: rings(speaker) >= 1)
        assert speaker.alerting and speaker.queued == [first]
        await conv.server.put(ModelAudio(rest))
        await conv.server.put(TurnCompleted())
        await until(lambda: speaker.queued == [first, rest])
        sent = len(conv.sent)
        await until(lambda: True, 0.3, feed=mic)
        assert len(conv.sent) == sent and conv.violations == 0  # nothing streamed while it rings
        app.post(ButtonPressed())
        await until(lambda: not speaker.alerting)
        app.post(ButtonReleased())
        await until(lambda: app.state is State.RESPONDING)
        assert speaker.flushes == flushes and speaker.queued == [first, rest]
        assert conv.causes == [] and live.opened == [conv]
        speaker.finish()  # the rest of the answer has played
        await until(lambda: app.state is State.LISTENING)


async def test_an_answer_that_ends_under_the_ring_ends_the_conversation(
    tmp_path: Path, factory: Any
) -> None:
    async with conversation_appliance(tmp_path, factory) as (app, mic, speaker, live):
        app.post(WAKE)
        await until(lambda: app.state is State.LISTENING, feed=mic)
        conv = live.opened[0]
        await conv.server.put(ModelAudio(b"\1\0" * 2400))
        await until(lambda: app.state is State.RESPONDING)
        app.post(RANG)
        await until(lambda: app.state is State.RINGING_OVER_ANSWER)
        await conv.server.put(TurnCompleted())
        speaker.finish()  # its last sample was heard just as the ring began
        await until(lambda: app.state is State.RINGING)
        assert conv.causes == [EndCause.TIMER] and speaker.alerting
        app.post(StopWordHeard(0.97, 16000))
        await until(lambda: app.state is State.IDLE)
        assert not speaker.alerting
