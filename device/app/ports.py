"""What the orchestrator needs from the other parts, as Protocols (constructor-injected).

The daemon passes the real microphone, speaker, wake-word detector and Live client; tests may pass
the same real parts or fakes. Nothing here imports a vendor library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from device.events import AudioBlock, EndCause, Opened, SessionEvent

if TYPE_CHECKING:
    from device.app.states import Status


class BlockQueue(Protocol):
    """A consumer's bounded queue of microphone blocks."""

    async def get(self) -> AudioBlock:
        """Wait for the next block."""
        ...

    def get_nowait(self) -> AudioBlock:
        """The next block, or asyncio.QueueEmpty."""
        ...


Gate = Callable[[AudioBlock], bool]


class MicrophonePort(Protocol):
    """The microphone: fans blocks out to named consumers."""

    def add_consumer(self, name: str, max_blocks: int, gate: Gate | None = None) -> BlockQueue:
        """A new queue receiving every block from now on (only blocks the gate lets through)."""
        ...

    def remove_consumer(self, name: str) -> None:
        """Stop delivering to that consumer."""
        ...


class MicPowerPort(Protocol):
    """Opens and closes the microphone for mute (closed: nothing is captured at all)."""

    async def start(self) -> None:
        """Open the input stream (blocks flow)."""
        ...

    async def stop(self) -> None:
        """Close the input stream."""
        ...


class SpeakerPort(Protocol):
    """The speaker: queued 24 kHz playback that can be flushed at once."""

    def play(self, pcm: bytes) -> None:
        """Queue 24 kHz mono int16 audio."""
        ...

    def play_sound(self, pcm: bytes) -> None:
        """Queue a short 24 kHz sound (an earcon) that plays as it comes, not as a reply."""
        ...

    def flush(self) -> float:
        """Drop everything queued; silent within one output block. Returns seconds dropped."""
        ...

    async def drain(self) -> None:
        """Wait until everything queued has been played."""
        ...

    @property
    def is_playing(self) -> bool:
        """True while queued audio is being played."""
        ...

    @property
    def volume(self) -> int:
        """Volume in percent."""
        ...

    def set_volume(self, level: int) -> int:
        """Set (and persist) the volume in percent; returns the level set."""
        ...

    def hold_volume_floor(self, level: int) -> None:
        """Play at least `level` percent until called with 0 (timers ring at least that loud)."""
        ...

    def start_alert(self) -> None:
        """Play alert audio instead of speech from now; queued speech waits (a ring)."""
        ...

    def play_alert(self, pcm: bytes) -> None:
        """Queue 24 kHz mono int16 alert audio."""
        ...

    def stop_alert(self) -> None:
        """Drop the alert (silent within one output block); paused speech goes on."""
        ...


class PreRollPort(Protocol):
    """Recent microphone audio (the wake word path keeps it)."""

    def take_from(self, sample: int) -> list[AudioBlock]:
        """Audio from sample index `sample` on."""
        ...

    @property
    def latest_end(self) -> int | None:
        """Sample index just after the newest audio held."""
        ...


class WakePort(Protocol):
    """The wake word detector's knob the appliance turns."""

    def set_barge_in(self, on: bool) -> None:
        """Use the higher barge-in threshold while the speaker plays."""
        ...

    def set_stop_word(self, on: bool) -> None:
        """Listen for "stop" without the wake word (while a timer rings)."""
        ...


class ConversationPort(Protocol):
    """One open Live session."""

    async def send_audio(self, pcm: bytes) -> None:
        """Stream 16 kHz mono int16 microphone audio."""
        ...

    async def send_audio_end(self) -> None:
        """The microphone stream paused (flushes the server's buffer)."""
        ...

    async def send_tool_response(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        """Answer a ToolCalled."""
        ...

    def events(self) -> AsyncIterator[SessionEvent]:
        """Everything the server says, as typed events, until the session ends."""
        ...

    def ending(self, cause: EndCause) -> None:
        """Why the session is about to be closed (recorded in the upload ledger)."""
        ...


class LivePort(Protocol):
    """The Live client: opens (and resumes) sessions; raises LiveError with a kind on failure."""

    def session(
        self, resume: bool, may_send: Callable[[], bool] | None, opened: Opened, note: str = ""
    ) -> AbstractAsyncContextManager[ConversationPort]:
        """Open a session; on exit it is closed and its resumption handle saved.

        `may_send()` is the streaming gate, asked again as each audio chunk goes on the wire;
        `opened` (what opened it) goes into the upload ledger; `note` (device news) follows the
        system instruction.
        """
        ...


class LedsPort(Protocol):
    """The status LEDs."""

    def show(self, status: Status, streaming: bool = False) -> None:
        """Render a status."""
        ...

    def off(self) -> None:
        """All dark."""
        ...


@dataclass
class Parts:
    """Everything the appliance drives, built by the daemon (or a test)."""

    mic: MicrophonePort
    mic_power: MicPowerPort
    speaker: SpeakerPort
    preroll: PreRollPort
    wake: WakePort
    live: LivePort
    leds: LedsPort
    upload_gate: Gate | None = None
    """Half-duplex echo gate for the upload consumer (None: always open)."""
    talks_over: Callable[[], bool] | None = None
    """Whether the upload stays open while the speaker plays (None: as the echo mode says)."""
