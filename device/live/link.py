"""One websocket connection of a conversation: the SDK session plus what we know about its turn.

A link also knows when the server owes it data: from the moment the server heard a question (input
transcript) or began an answer until that turn completes. The server then sends a message at least
every few hundred milliseconds, except after the answer's audio, when it waits about as long as
that audio still plays before turnComplete. `overdue()` is the dead-link rule built on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.genai import live, types

log = logging.getLogger(__name__)

AUDIO_MIME = "audio/pcm;rate=16000"
MODEL_BYTES_PER_S = 24000 * 2
"""Model speech: 24 kHz mono int16."""
CLOSE_S = 3.0
"""Bound on closing one connection (close handshake and TCP close)."""
STALL_S = 8.0
"""No data this long where data must come (a turn in flight, past its audio) = a dead link.

Long enough for a search or tool round trip and load on a Pi; short enough to say so within 10 s."""


@dataclass(frozen=True)
class Outgoing:
    """A client message waiting to be sent (kept in order across a handover)."""

    kind: str  # "audio" | "audio_end" | "text" | "tool"
    pcm: bytes = b""
    text: str = ""
    call_id: str = ""
    name: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def audio(cls, pcm: bytes) -> Outgoing:
        """A chunk of 16 kHz microphone audio."""
        return cls("audio", pcm=pcm)

    @property
    def size(self) -> int:
        """Payload bytes (audio, text, tool result as JSON), before the protocol's framing."""
        if self.kind == "tool":
            return len(json.dumps(self.result).encode())
        return len(self.pcm) + len(self.text.encode())


class Link:
    """An open AsyncSession and its exit stack."""

    def __init__(
        self,
        session: live.AsyncSession,
        stack: contextlib.AsyncExitStack,
        clock: Callable[[], float] = time.monotonic,
        *,
        resumed: bool = False,
    ) -> None:
        self.session = session
        self._stack = stack
        self.clock = clock
        self.closing = False
        self.going_away = False
        self.lost = False
        """The server ended this connection while it was going away (before the handover)."""
        self.in_turn = False
        """True while a turn is in flight here: the server heard a question or is answering."""
        self._turn_done = asyncio.Event()
        self.last_received = clock()
        self._audio_from: float | None = None
        self._audio_s = 0.0
        # For the upload ledger (device.privacy.ledger): what went over this connection.
        self.opened_wall = time.time()
        self.opened_at = clock()
        self.resumed = resumed
        """Opened with a resumption handle."""
        self.index = 1
        """Which connection of its conversation this is (1, then 2 after a handover, ...)."""
        self.handed_over = False
        """A goAway moved the conversation to a newer connection."""
        self.recorded = False
        self.audio_bytes_up = 0
        self.bytes_up = 0
        self.bytes_down = 0

    # --- what the server owes ------------------------------------------------------------------

    def received(self) -> None:
        """A server message arrived."""
        self.last_received = self.clock()

    def turn_started(self) -> None:
        """The server heard a question or began to answer: data must come until the turn ends."""
        self.in_turn = True

    def received_text(self, text: str) -> None:
        """A transcript arrived (counted, never kept)."""
        self.bytes_down += len(text.encode())

    def answer_audio(self, n_bytes: int) -> None:
        """Model audio arrived (part of the turn in flight)."""
        self.bytes_down += n_bytes
        self.in_turn = True
        if self._audio_from is None:
            self._audio_from = self.clock()
        self._audio_s += n_bytes / MODEL_BYTES_PER_S

    def overdue(self, stall_s: float = STALL_S) -> float | None:
        """Seconds past the moment data was due, if a turn is in flight and the server is silent.

        Data is due `stall_s` after the last message, or after the turn's audio would have played
        out (the server holds turnComplete until then), whichever is later.
        """
        if not self.in_turn:
            return None
        due = self.last_received
        if self._audio_from is not None:
            due = max(due, self._audio_from + self._audio_s)
        late = self.clock() - (due + stall_s)
        return late if late >= 0 else None

    async def send(self, item: Outgoing) -> None:
        """Put one message on the wire."""
        s = self.session
        if item.kind == "audio":
            await s.send_realtime_input(audio=types.Blob(data=item.pcm, mime_type=AUDIO_MIME))
        elif item.kind == "audio_end":
            await s.send_realtime_input(audio_stream_end=True)
        elif item.kind == "text":
            await s.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text=item.text)]),
                turn_complete=True,
            )
        elif item.kind == "tool":
            await s.send_tool_response(
                function_responses=[
                    types.FunctionResponse(id=item.call_id, name=item.name, response=item.result)
                ]
            )
        else:
            raise ValueError(f"unknown outgoing kind {item.kind}")
        self.bytes_up += item.size
        if item.kind == "audio":
            self.audio_bytes_up += len(item.pcm)

    def end_turn(self) -> None:
        """The model's turn on this connection ended (complete or interrupted)."""
        self.in_turn = False
        self._audio_from = None
        self._audio_s = 0.0
        self._turn_done.set()

    async def close_after_turn(self, limit_s: float) -> None:
        """After a handover: let a reply in flight finish (up to limit_s), then close."""
        if self.in_turn:
            self._turn_done.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit_s):
                    await self._turn_done.wait()
        await self.close()

    async def close(self, limit_s: float = CLOSE_S) -> None:
        """Close the connection (idempotent), bounded: a dead peer never answers the close frame.

        websockets' own close_timeout bounds the handshake too (set in device.live.setup); this
        bound holds whatever the exit stack waits for.
        """
        if self.closing:
            return
        self.closing = True
        try:
            async with asyncio.timeout(limit_s):
                await self._stack.aclose()
        except TimeoutError:
            log.warning("a live connection did not close within %.1f s: dropped", limit_s)
            self.abort()
        except Exception as exc:  # already broken: nothing more to do
            log.debug("closing a live connection: %s", exc)

    def abort(self) -> None:
        """Drop the TCP connection at once (no close handshake)."""
        transport = getattr(getattr(self.session, "_ws", None), "transport", None)
        if transport is not None:
            transport.abort()
