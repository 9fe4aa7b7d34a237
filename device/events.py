"""Facts the parts of the appliance tell each other: past-tense events, plain data, no I/O.

Producers: the audio engine (AudioBlock), the wake-word detector (WakeDetected), the button
(Button*), the Live session (everything under "session"). The appliance's state machine consumes
them. This module imports nothing from the project and no vendor library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MIC_RATE = 16000
"""Microphone audio everywhere in the app: 16 kHz mono int16 little-endian."""
MODEL_RATE = 24000
"""Model speech from the Live API: 24 kHz mono int16 little-endian."""


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """A block of microphone audio (16 kHz mono int16), stamped with its position in the stream.

    `start` counts samples since the microphone opened, so pre-roll and live audio can be joined
    without a gap or a duplicate.
    """

    pcm: bytes
    start: int
    uncancelled: bytes | None = None
    """The same audio as captured, before the echo canceller took the speaker's sound out of
    `pcm` (echo_mode "aec", once it is trusted); None otherwise."""

    @property
    def end(self) -> int:
        """Sample index just after this block."""
        return self.start + len(self.pcm) // 2


# --- local triggers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WakeDetected:
    """The wake word was heard; `end` is the sample index where the wake word ended."""

    model: str
    score: float
    end: int
    voice: str | None = None
    """The enrolled voice that matched (None: accepted on the base model's score alone)."""
    fired_at: int | None = None
    """The sample index where the detector fired (the end of the frame that completed the
    trigger); None when not known (e.g. an injected event)."""
    second_stage: bool = False
    """Accepted by the second stage where the base model's score alone was below the threshold."""
    micro: bool = False
    """Heard by the microWakeWord model where the base model's score was below the threshold."""


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    """The button went down (short press actions happen on release of a non-hold)."""


@dataclass(frozen=True, slots=True)
class ButtonReleased:
    """The button came up before the hold time: a short press."""


@dataclass(frozen=True, slots=True)
class ButtonHeld:
    """The button has been held for the hold time (toggles mute)."""


@dataclass(frozen=True, slots=True)
class StopWordHeard:
    """ "stop" was heard without the wake word (only listened for while a timer rings)."""

    score: float
    end: int
    """Sample index where the frame that scored it ends."""


@dataclass(frozen=True, slots=True)
class TimerRang:
    """One or more timers or alarms came due (device.timers): ring."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    """How a person calls each, e.g. "pasta timer", "07:30 alarm"."""
    late_s: float = 0.0
    """How late the latest of them is (e.g. it ran out while the daemon was down)."""


@dataclass(frozen=True, slots=True)
class AudioDeviceFailed:
    """The microphone or speaker failed (missing, busy, unplugged); the engine keeps retrying."""

    direction: str
    message: str


@dataclass(frozen=True, slots=True)
class AudioDeviceRecovered:
    """A failed audio device works again."""

    direction: str


class Trigger(StrEnum):
    """What opened a session with the Live API (recorded in the upload ledger)."""

    WAKE_WORD = "wake_word"
    """The wake word was heard (with its score, and the enrolled voice if one matched)."""
    BUTTON = "button"
    """A short press of the button."""
    COMMAND = "command"
    """A command on the device (`livespeaker ask`) or a program using the Live client directly."""
    DOCTOR = "doctor"
    """`livespeaker doctor`'s API check: the setup only, no audio, no words."""


class EndCause(StrEnum):
    """Why the device ended a conversation (recorded in the upload ledger)."""

    SILENCE = "silence"
    """Nothing more was said (conversation.follow_up_s / no_speech_timeout_s)."""
    TIME_LIMIT = "time_limit"
    """conversation.max_conversation_s was reached."""
    BUTTON = "button"
    """A press ended it."""
    ASKED = "asked"
    """The model ended it when asked to ("that's all, thanks": the end_conversation tool)."""
    MUTED = "muted"
    """Muted, by holding the button or on request."""
    ERROR = "error"
    """A failure: the session's, or an audio device's."""
    SHUTDOWN = "shutdown"
    """The service stopped or reloaded its configuration."""
    TIMER = "timer"
    """A timer or alarm rang: while connecting or listening, or over an answer that then ended
    (or the ring outlasted it: ring_timeout_s)."""


@dataclass(frozen=True, slots=True)
class Opened:
    """Why a session was opened: the trigger, and for the wake word the facts of its detection."""

    trigger: Trigger
    wake_word: str | None = None
    """The wake word model that fired."""
    score: float | None = None
    """Its score."""
    voice: str | None = None
    """The enrolled voice that matched (None: the base model alone, or not a wake word)."""
    second_stage: bool = False
    """The wake word's second stage accepted a score below the base threshold."""
    micro: bool = False
    """The microWakeWord model heard it where the base model's score was below the threshold."""

    @classmethod
    def by_wake(cls, wake: WakeDetected) -> Opened:
        """Opened by this wake word detection."""
        score = round(float(wake.score), 3)
        return cls(Trigger.WAKE_WORD, wake.model, score, wake.voice, wake.second_stage, wake.micro)


# --- the Live session -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """A chunk of the model's speech (24 kHz mono int16)."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class InputTranscribed:
    """Part of the transcript of what the user said."""

    text: str


@dataclass(frozen=True, slots=True)
class OutputTranscribed:
    """Part of the transcript of what the model is saying."""

    text: str


@dataclass(frozen=True, slots=True)
class ServerInterrupted:
    """The server dropped its reply because the user spoke: stop playback at once."""


@dataclass(frozen=True, slots=True)
class GenerationCompleted:
    """The model finished generating this turn (playback may still be going)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage reported with a turn."""

    prompt_tokens: int = 0
    response_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    """The server closed the turn."""

    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the device offers to the model: name, description, JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """The model asks the device to run a function; answer with the same id."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCallsCancelled:
    """The server cancelled pending tool calls (e.g. after a barge-in)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnTranscribed:
    """A finished turn's words: what the user said, what the model answered (never logged by
    default: device.privacy.transcripts)."""

    heard: str
    answered: str


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """A connection was set up; `resumed` tells whether the saved conversation came back."""

    resumed: bool
    handle_age_s: float | None = None


SessionEvent = (
    ModelAudio
    | InputTranscribed
    | OutputTranscribed
    | ServerInterrupted
    | GenerationCompleted
    | TurnCompleted
    | ToolCalled
    | ToolCallsCancelled
    | SessionResumed
)


# --- failures -------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """Kinds of failure the user can tell apart (each has its own LED pattern and earcon)."""

    NO_NETWORK = "no_network"
    """Cannot reach the service (DNS, TCP, TLS, timeouts, dropped connections)."""
    BAD_KEY = "bad_key"
    """The API key is missing or was rejected."""
    QUOTA = "quota"
    """Quota or rate limit exhausted."""
    SERVER = "server"
    """The service failed (internal error, unavailable)."""
    CONFIG = "config"
    """The configuration is wrong (e.g. unknown model)."""
    AUDIO_DEVICE = "audio_device"
    """The microphone or speaker is missing, busy or was unplugged."""
