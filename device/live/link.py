"""One websocket connection of a conversation: the SDK session plus what we know about its turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from google.genai import live, types

log = logging.getLogger(__name__)

AUDIO_MIME = "audio/pcm;rate=16000"


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


class Link:
    """An open AsyncSession and its exit stack."""

    def __init__(self, session: live.AsyncSession, stack: contextlib.AsyncExitStack) -> None:
        self.session = session
        self._stack = stack
        self.closing = False
        self.going_away = False
        self.in_turn = False
        """True while the model is answering on this connection."""
        self._turn_done = asyncio.Event()

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

    def end_turn(self) -> None:
        """The model's turn on this connection ended (complete or interrupted)."""
        self.in_turn = False
        self._turn_done.set()

    async def close_after_turn(self, limit_s: float) -> None:
        """After a handover: let a reply in flight finish (up to limit_s), then close."""
        if self.in_turn:
            self._turn_done.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit_s):
                    await self._turn_done.wait()
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.closing:
            return
        self.closing = True
        try:
            await self._stack.aclose()
        except Exception as exc:  # already broken: nothing more to do
            log.debug("closing a live connection: %s", exc)
