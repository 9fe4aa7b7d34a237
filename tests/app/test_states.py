"""The transition table: pure, no asyncio."""

from __future__ import annotations

import logging

import pytest

from device.app.states import (
    TRANSITIONS,
    Action,
    AnswerPlayed,
    AnswerStarted,
    ErrorShown,
    SessionFailed,
    SessionOpened,
    SilenceTimedOut,
    Started,
    StartedMuted,
    State,
    Status,
    Stopping,
    log_step,
    status_line,
    step,
)
from device.events import (
    AudioDeviceFailed,
    ButtonHeld,
    ButtonReleased,
    ErrorKind,
    ServerInterrupted,
    WakeDetected,
)

pytestmark = pytest.mark.unit
WAKE = WakeDetected("hey_jarvis", 0.99, 16000)


def run(
    events: list[object], start: State = State.STARTING
) -> list[tuple[State, tuple[Action, ...]]]:
    status = Status(start)
    out = []
    for ev in events:
        s = step(status, ev)  # type: ignore[arg-type]
        if s is None:
            out.append((status.state, ()))
            continue
        status = s.status
        out.append((status.state, s.actions))
    return out


def test_a_whole_conversation_with_a_follow_up() -> None:
    got = run(
        [
            Started(),
            WAKE,
            SessionOpened(),
            AnswerStarted(),
            AnswerPlayed(),
            AnswerStarted(),
            AnswerPlayed(),
            SilenceTimedOut(),
        ]
    )
    assert [s for s, _ in got] == [
        State.IDLE,
        State.CONNECTING,
        State.LISTENING,
        State.RESPONDING,
        State.LISTENING,
        State.RESPONDING,
        State.LISTENING,
        State.IDLE,
    ]
    assert got[1][1] == (Action.OPEN_SESSION,)
    assert got[-1][1] == (Action.END_CONVERSATION, Action.END_CHIME)


@pytest.mark.parametrize("barge", [ServerInterrupted(), WAKE, ButtonReleased()])
def test_barge_in_flushes_and_listens(barge: object) -> None:
    s = step(Status(State.RESPONDING), barge)  # type: ignore[arg-type]
    assert s is not None
    assert s.status.state is State.LISTENING
    assert s.actions == (Action.FLUSH_SPEAKER,)


def test_button_press_while_listening_ends_and_hold_toggles_mute() -> None:
    got = run(
        [Started(), ButtonReleased(), SessionOpened(), ButtonReleased(), ButtonHeld(), ButtonHeld()]
    )
    assert [s for s, _ in got] == [
        State.IDLE,
        State.CONNECTING,
        State.LISTENING,
        State.IDLE,
        State.MUTED,
        State.IDLE,
    ]
    assert got[4][1] == (Action.CLOSE_MIC, Action.MUTE_CHIME)
    assert got[5][1] == (Action.OPEN_MIC, Action.UNMUTE_CHIME)


def test_muted_ignores_wake_and_press() -> None:
    assert step(Status(State.MUTED), WAKE) is None
    assert step(Status(State.MUTED), ButtonReleased()) is None
    s = step(Status(State.STARTING), StartedMuted())
    assert s is not None and s.status.state is State.MUTED


def test_hold_during_a_conversation_ends_it_and_mutes() -> None:
    s = step(Status(State.RESPONDING), ButtonHeld())
    assert s is not None and s.status.state is State.MUTED
    assert Action.END_CONVERSATION in s.actions and Action.CLOSE_MIC in s.actions


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_failure_carries_its_kind_then_returns_to_idle(kind: ErrorKind) -> None:
    s = step(Status(State.CONNECTING), SessionFailed(kind, "x"))
    assert s is not None
    assert s.status == Status(State.ERROR, kind)
    assert s.actions == (Action.END_CONVERSATION, Action.ERROR_EARCON)
    back = step(s.status, ErrorShown())
    assert back is not None and back.status == Status(State.IDLE)


def test_remembered_failure_answers_a_wake_up_from_idle() -> None:
    s = step(Status(State.IDLE), SessionFailed(ErrorKind.BAD_KEY))
    assert s is not None and s.status == Status(State.ERROR, ErrorKind.BAD_KEY)
    assert s.actions == (Action.ERROR_EARCON,)


def test_audio_device_failure_is_an_error_kind() -> None:
    s = step(Status(State.IDLE), AudioDeviceFailed("input", "gone"))
    assert s is not None and s.status == Status(State.ERROR, ErrorKind.AUDIO_DEVICE)


def test_wake_word_while_listening_changes_nothing() -> None:
    assert step(Status(State.LISTENING), WAKE) is None
    assert step(Status(State.CONNECTING), WAKE) is None


def test_stopping_from_every_state_ends_any_conversation() -> None:
    for state in State:
        s = step(Status(state), Stopping())
        assert s is not None
        assert s.status.state in (State.IDLE, State.MUTED)


def test_every_row_targets_a_state() -> None:
    assert all(isinstance(t.to, State) for t in TRANSITIONS.values())


def test_transition_logged_once_with_cause(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="device.app.states")
    before = Status(State.CONNECTING)
    s = step(before, SessionFailed(ErrorKind.QUOTA, "429"))
    assert s is not None
    log_step(before, s)
    (rec,) = caplog.records
    assert "connecting -> error [quota]" in rec.getMessage()
    assert "SessionFailed(quota: 429)" in rec.getMessage()
    assert rec.STATE == "error"  # type: ignore[attr-defined]


def test_status_lines() -> None:
    assert status_line(Status(State.IDLE), "hey jarvis") == "Listening for 'hey jarvis'"
    assert status_line(Status(State.RESPONDING), "x") == "Answering"
    assert status_line(Status(State.ERROR, ErrorKind.BAD_KEY), "x") == "Error: API key rejected"
