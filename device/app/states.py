"""The appliance's states and the transitions between them, as data.

Pure: no asyncio, no I/O. `step()` looks the (state, event type) pair up in `TRANSITIONS` and returns
the next status plus the actions the orchestrator has to carry out, or None when the event does not
matter in that state. Every change is logged once with its cause (journal field STATE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum, StrEnum

from device.events import (
    AudioDeviceFailed,
    AudioDeviceRecovered,
    ButtonHeld,
    ButtonPressed,
    ButtonReleased,
    ErrorKind,
    ServerInterrupted,
    StopWordHeard,
    TimerRang,
    WakeDetected,
)
from device.failures import POLICY

log = logging.getLogger(__name__)


class State(StrEnum):
    """What the speaker is doing; the LEDs and the systemd STATUS line follow it."""

    STARTING = "starting"
    """Opening the microphone and loading the wake word model; nothing is listened to yet."""
    IDLE = "idle"
    """Listening locally for the wake word; nothing leaves the device."""
    CONNECTING = "connecting"
    """Woken: the session is opening; microphone audio is buffered on the device, not sent."""
    LISTENING = "listening"
    """Microphone audio is streamed to the session (the question, or a follow-up)."""
    RESPONDING = "responding"
    """The model's answer is playing."""
    MUTED = "muted"
    """The microphone is closed: no wake word detection and no streaming."""
    ERROR = "error"
    """Something failed (the kind is kept in Status.error); shown for a moment, then idle."""
    RINGING = "ringing"
    """A timer or alarm rings; a button press, the wake word or "stop" stops it (or its time
    limit). Only in this state is "stop" listened for."""
    RINGING_OVER_ANSWER = "ringing_over_answer"
    """A timer or alarm rings during an answer: the answer is paused where it was (the model may
    go on sending it) and nothing is streamed; stopping the ring (button, wake word, "stop") lets
    the answer go on from there. The conversation stays open, but ends if the ring times out."""
    RINGING_MUTED = "ringing_muted"
    """A timer or alarm rings while muted (mute closes the microphone, not the speaker); a
    button press stops it and the speaker is muted again."""


# --- facts the orchestrator produces itself (the rest come from device.events) ----------------


@dataclass(frozen=True, slots=True)
class Started:
    """Microphone open, wake word model loaded, loop running."""


@dataclass(frozen=True, slots=True)
class StartedMuted:
    """Started, but mute was on when the daemon last stopped (it survives restarts)."""


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """The Live session is set up and accepts audio."""


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The session could not be opened, or it failed; `kind` says how."""

    kind: ErrorKind
    message: str = ""


@dataclass(frozen=True, slots=True)
class AnswerStarted:
    """The first audio of the model's answer arrived."""


@dataclass(frozen=True, slots=True)
class AnswerPlayed:
    """The model's turn is complete and its audio has played out."""


@dataclass(frozen=True, slots=True)
class SilenceTimedOut:
    """Nobody spoke within the follow-up window (or at all after waking up)."""


@dataclass(frozen=True, slots=True)
class ConversationTimedOut:
    """The conversation reached [conversation] max_conversation_s."""


@dataclass(frozen=True, slots=True)
class EndRequested:
    """The model called end_conversation (acted on once its answer has played)."""


@dataclass(frozen=True, slots=True)
class MuteRequested:
    """The model called mute."""


@dataclass(frozen=True, slots=True)
class ErrorShown:
    """The error pattern and earcon have been shown long enough."""


@dataclass(frozen=True, slots=True)
class RingTimedOut:
    """Nobody stopped the ring within [timers] ring_timeout_s."""


@dataclass(frozen=True, slots=True)
class Stopping:
    """The daemon is shutting down (SIGTERM)."""


AppEvent = (
    Started
    | StartedMuted
    | WakeDetected
    | ButtonPressed
    | ButtonReleased
    | ButtonHeld
    | SessionOpened
    | SessionFailed
    | AnswerStarted
    | ServerInterrupted
    | AnswerPlayed
    | SilenceTimedOut
    | ConversationTimedOut
    | EndRequested
    | MuteRequested
    | ErrorShown
    | AudioDeviceFailed
    | AudioDeviceRecovered
    | TimerRang
    | StopWordHeard
    | RingTimedOut
    | Stopping
)


class Action(Enum):
    """Side effects a transition asks for, carried out in the listed order by the orchestrator."""

    OPEN_SESSION = "open_session"
    """Start the conversation: open the session, buffer then stream the microphone. The
    conversation also decides on the wake chime: none over speech that goes on right after the
    wake word, else a chime that is kept out of the question."""
    FLUSH_SPEAKER = "flush_speaker"
    """Stop the answer now (barge-in)."""
    END_CONVERSATION = "end_conversation"
    """Close the session (the handle is saved) and stop the conversation's tasks."""
    END_CHIME = "end_chime"
    """Play the end-of-conversation sound."""
    ERROR_EARCON = "error_earcon"
    """Play the error kind's sound and schedule ErrorShown."""
    CLOSE_MIC = "close_mic"
    """Mute: close the microphone (no wake detection, no streaming), persist mute."""
    OPEN_MIC = "open_mic"
    """Unmute: reopen the microphone, persist unmute."""
    MUTE_CHIME = "mute_chime"
    """Play the mute sound."""
    UNMUTE_CHIME = "unmute_chime"
    """Play the unmute sound."""
    START_RING = "start_ring"
    """Ring (or go on ringing, for one more timer): the repeating ring sound at least at the
    volume floor, and the ring's time limit (re)started."""
    STOP_RING = "stop_ring"
    """Silence the ring within one audio block."""


@dataclass(frozen=True, slots=True)
class Status:
    """The current state, plus the error kind while in ERROR."""

    state: State
    error: ErrorKind | None = None


MUTED_STATES = frozenset({State.MUTED, State.RINGING_MUTED})
"""The microphone is closed (a ring may still sound)."""

BUSY_STATES = frozenset(
    {
        State.CONNECTING,
        State.LISTENING,
        State.RESPONDING,
        State.RINGING,
        State.RINGING_OVER_ANSWER,
        State.RINGING_MUTED,
    }
)
"""A conversation or a ring: the audio path runs for latency rather than for idle CPU, and a
wake word heard here belongs to this speaker (device.home.arbitration)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: where to go and what to do on the way."""

    to: State
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one event: the new status and the actions to run."""

    status: Status
    actions: tuple[Action, ...]
    cause: str


A = Action
S = State
_IN_CONVERSATION = (S.CONNECTING, S.LISTENING, S.RESPONDING)
_END = (A.END_CONVERSATION, A.END_CHIME)
_FAIL = (A.END_CONVERSATION, A.ERROR_EARCON)
_MUTE = (A.END_CONVERSATION, A.CLOSE_MIC, A.MUTE_CHIME)

TRANSITIONS: dict[tuple[State, type], Transition] = {
    (S.STARTING, Started): Transition(S.IDLE),
    (S.STARTING, StartedMuted): Transition(S.MUTED),
    # Wake-ups: wake word or a short press.
    (S.IDLE, WakeDetected): Transition(S.CONNECTING, (A.OPEN_SESSION,)),
    (S.IDLE, ButtonReleased): Transition(S.CONNECTING, (A.OPEN_SESSION,)),
    (S.ERROR, WakeDetected): Transition(S.CONNECTING, (A.OPEN_SESSION,)),
    (S.ERROR, ButtonReleased): Transition(S.CONNECTING, (A.OPEN_SESSION,)),
    # A wake-up refused at once (remembered auth/quota failure) answers with the error sound.
    (S.IDLE, SessionFailed): Transition(S.ERROR, (A.ERROR_EARCON,)),
    (S.ERROR, SessionFailed): Transition(S.ERROR, (A.ERROR_EARCON,)),
    (S.CONNECTING, SessionOpened): Transition(S.LISTENING),
    (S.LISTENING, AnswerStarted): Transition(S.RESPONDING),
    # Barge-in: the server, the wake word or the button stops the answer and listens.
    (S.RESPONDING, ServerInterrupted): Transition(S.LISTENING, (A.FLUSH_SPEAKER,)),
    (S.RESPONDING, WakeDetected): Transition(S.LISTENING, (A.FLUSH_SPEAKER,)),
    (S.RESPONDING, ButtonReleased): Transition(S.LISTENING, (A.FLUSH_SPEAKER,)),
    (S.RESPONDING, AnswerPlayed): Transition(S.LISTENING),
    # A press while listening (or still connecting) ends the conversation.
    (S.LISTENING, ButtonReleased): Transition(S.IDLE, _END),
    (S.CONNECTING, ButtonReleased): Transition(S.IDLE, _END),
    (S.LISTENING, SilenceTimedOut): Transition(S.IDLE, _END),
    (S.LISTENING, EndRequested): Transition(S.IDLE, _END),
    (S.RESPONDING, EndRequested): Transition(S.IDLE, _END),
    # Hold toggles mute from anywhere but STARTING.
    (S.MUTED, ButtonHeld): Transition(S.IDLE, (A.OPEN_MIC, A.UNMUTE_CHIME)),
    (S.IDLE, ButtonHeld): Transition(S.MUTED, (A.CLOSE_MIC, A.MUTE_CHIME)),
    (S.ERROR, ButtonHeld): Transition(S.MUTED, (A.CLOSE_MIC, A.MUTE_CHIME)),
    (S.ERROR, ErrorShown): Transition(S.IDLE),
    (S.ERROR, AudioDeviceRecovered): Transition(S.IDLE),
}
for _s in _IN_CONVERSATION:
    TRANSITIONS[(_s, ButtonHeld)] = Transition(S.MUTED, _MUTE)
    TRANSITIONS[(_s, MuteRequested)] = Transition(S.MUTED, _MUTE)
    TRANSITIONS[(_s, SessionFailed)] = Transition(S.ERROR, _FAIL)
    TRANSITIONS[(_s, ConversationTimedOut)] = Transition(S.IDLE, _END)
for _s in (S.STARTING, S.IDLE, *_IN_CONVERSATION):
    TRANSITIONS[(_s, AudioDeviceFailed)] = Transition(S.ERROR, _FAIL)
for _s in State:
    if _s is not S.MUTED:
        TRANSITIONS[(_s, Stopping)] = Transition(S.IDLE, (A.END_CONVERSATION,))
TRANSITIONS[(S.MUTED, Stopping)] = Transition(S.MUTED)
# Timers and alarms ring from any state but STARTING (the scheduler starts after Started). An
# answer that is playing pauses under the ring and goes on once it is stopped; a conversation
# that is connecting or listening ends (the ring is what matters now, and the microphone would
# send it). Muted, it rings too, and stays muted.
_RING = (A.START_RING,)
for _s in (S.IDLE, S.ERROR, S.RINGING):
    TRANSITIONS[(_s, TimerRang)] = Transition(S.RINGING, _RING)
for _s in (S.CONNECTING, S.LISTENING):
    TRANSITIONS[(_s, TimerRang)] = Transition(S.RINGING, (A.END_CONVERSATION, *_RING))
for _s in (S.RESPONDING, S.RINGING_OVER_ANSWER):
    TRANSITIONS[(_s, TimerRang)] = Transition(S.RINGING_OVER_ANSWER, _RING)
for _s in (S.MUTED, S.RINGING_MUTED):
    TRANSITIONS[(_s, TimerRang)] = Transition(S.RINGING_MUTED, _RING)
# A press silences at once (on the way down); the release (a short press) then leaves the state,
# so it does not also open a conversation. A hold after the press toggles mute as elsewhere.
for _s, _back in ((S.RINGING, S.IDLE), (S.RINGING_MUTED, S.MUTED)):
    TRANSITIONS[(_s, ButtonPressed)] = Transition(_s, (A.STOP_RING,))
    TRANSITIONS[(_s, ButtonReleased)] = Transition(_back, (A.STOP_RING,))
    TRANSITIONS[(_s, RingTimedOut)] = Transition(_back, (A.STOP_RING,))
    TRANSITIONS[(_s, Stopping)] = Transition(_back, (A.STOP_RING,))
TRANSITIONS[(S.RINGING, WakeDetected)] = Transition(S.IDLE, (A.STOP_RING,))
TRANSITIONS[(S.RINGING, StopWordHeard)] = Transition(S.IDLE, (A.STOP_RING,))
TRANSITIONS[(S.RINGING, ButtonHeld)] = Transition(S.MUTED, (A.STOP_RING, A.CLOSE_MIC, A.MUTE_CHIME))
TRANSITIONS[(S.RINGING_MUTED, ButtonHeld)] = Transition(
    S.IDLE, (A.STOP_RING, A.OPEN_MIC, A.UNMUTE_CHIME)
)
# Over a paused answer: what stops the ring lets the answer go on (a press silences it on the way
# down and the answer plays on while the button is down; the release then changes nothing else).
# The answer's own end, or anything that ends a conversation, leaves a plain ring behind.
_OVER = S.RINGING_OVER_ANSWER
TRANSITIONS[(_OVER, ButtonPressed)] = Transition(_OVER, (A.STOP_RING,))
for _stop in (ButtonReleased, WakeDetected, StopWordHeard):
    TRANSITIONS[(_OVER, _stop)] = Transition(S.RESPONDING, (A.STOP_RING,))
for _e in (AnswerPlayed, ServerInterrupted, SessionFailed, ConversationTimedOut, AudioDeviceFailed):
    TRANSITIONS[(_OVER, _e)] = Transition(S.RINGING, (A.END_CONVERSATION,))
TRANSITIONS[(_OVER, RingTimedOut)] = Transition(S.IDLE, (A.STOP_RING, A.END_CONVERSATION))
TRANSITIONS[(_OVER, Stopping)] = Transition(S.IDLE, (A.STOP_RING, A.END_CONVERSATION))
TRANSITIONS[(_OVER, ButtonHeld)] = Transition(S.MUTED, (*_MUTE, A.STOP_RING))
# A failed audio device while muted stays muted (the mic is closed anyway).


def _error_of(event: AppEvent) -> ErrorKind | None:
    if isinstance(event, SessionFailed):
        return event.kind
    if isinstance(event, AudioDeviceFailed):
        return ErrorKind.AUDIO_DEVICE
    return None


def describe(event: AppEvent) -> str:
    """A short human cause for the log line: the event's name and its interesting fields."""
    name = type(event).__name__
    if isinstance(event, SessionFailed):
        return f"{name}({event.kind.value}{': ' + event.message if event.message else ''})"
    if isinstance(event, AudioDeviceFailed):
        return f"{name}({event.direction}: {event.message})"
    if isinstance(event, WakeDetected):
        return f"{name}({event.model} {event.score:.2f})"
    if isinstance(event, TimerRang):
        return f"{name}({', '.join(event.names)}{f', {event.late_s:.0f} s late' if event.late_s >= 1 else ''})"
    return name


def step(status: Status, event: AppEvent) -> Step | None:
    """Apply one event; None when the event means nothing in this state."""
    row = TRANSITIONS.get((status.state, type(event)))
    if row is None:
        return None
    error = _error_of(event) if row.to is State.ERROR else None
    return Step(Status(row.to, error), row.actions, describe(event))


def log_step(before: Status, after: Step) -> None:
    """Log a transition once, with its cause and the structured STATE field."""
    kind = after.status.error.value if after.status.error else ""
    log.info(
        "%s -> %s%s (cause: %s)",
        before.state.value,
        after.status.state.value,
        f" [{kind}]" if kind else "",
        after.cause,
        extra={"STATE": after.status.state.value, "ERROR_KIND": kind, "CAUSE": after.cause},
    )


STATUS_LINES: dict[State, str] = {
    State.STARTING: "Starting",
    State.IDLE: "Listening for '{wake}'",
    State.CONNECTING: "Connecting",
    State.LISTENING: "Listening",
    State.RESPONDING: "Answering",
    State.MUTED: "Muted (microphone off)",
    State.ERROR: "Error: {error}",
    State.RINGING: "Ringing (press the button or say 'stop')",
    State.RINGING_OVER_ANSWER: "Ringing, answer paused (press the button or say 'stop')",
    State.RINGING_MUTED: "Ringing, microphone off (press the button to stop)",
}

ERROR_LINES: dict[ErrorKind, str] = {kind: policy.line for kind, policy in POLICY.items()}
"""The STATUS= words for each kind of failure (device.failures)."""


def status_line(status: Status, wake_phrase: str) -> str:
    """The human line for systemd STATUS=, e.g. "Listening for 'hey jarvis'"."""
    err = ERROR_LINES[status.error] if status.error else "unknown"
    return STATUS_LINES[status.state].format(wake=wake_phrase, error=err)
