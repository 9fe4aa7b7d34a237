"""Ask Gemini Live by text and hear or see the answer (resumes the saved conversation)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from device.apikey import find_api_key
from device.cli import Handler
from device.config import EX_CONFIG, Config
from device.events import (
    MODEL_RATE,
    ModelAudio,
    OutputTranscribed,
    ServerInterrupted,
    SessionEvent,
    TurnCompleted,
)
from device.live.errors import LiveError
from device.live.session import LiveClient

if TYPE_CHECKING:
    from device.audio.speaker import Speaker

log = logging.getLogger(__name__)

EX_UNAVAILABLE = 69
EX_NOPERM = 77
_EXIT = {"bad_key": EX_NOPERM, "config": EX_CONFIG}


def register(parser: argparse.ArgumentParser) -> Handler:
    """`ask [TEXT] [--play] [--wav FILE] [--new]`."""
    parser.add_argument("text", nargs="?", help="the question; none: chat turn by turn (q quits)")
    parser.add_argument("--play", action="store_true", help="play the spoken answer")
    parser.add_argument("--wav", metavar="FILE", help="write the spoken answer(s) as a 24 kHz WAV")
    parser.add_argument("--new", action="store_true", help="start fresh, don't resume")
    parser.add_argument(
        "--reply-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up on a reply after S seconds (default 60)",
    )
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from device.audio.devices import AudioDeviceError

    try:
        return asyncio.run(_ask(args, cfg))
    except LiveError as exc:
        print(f"livespeaker: {exc}", file=sys.stderr)
        return _EXIT.get(exc.kind.value, EX_UNAVAILABLE)
    except AudioDeviceError as exc:
        print(f"livespeaker: cannot play the answer: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE


async def _ask(args: argparse.Namespace, cfg: Config) -> int:
    client = LiveClient(cfg, find_api_key(cfg.live))
    audio: list[bytes] = []
    async with _speaker(cfg, args.play) as speaker, client.session(resume=not args.new) as conv:
        events = aiter(conv.events())
        first = await anext(events)
        log.info("session ready: %s", first)
        pending = [args.text] if args.text else []
        while True:
            text = (pending.pop() if pending else None) if args.text else await _prompt()
            if text is None:
                break
            await conv.send_text(text)
            reply = await _collect(events, audio, speaker, args.reply_timeout)
            print(reply, flush=True)
            saved = await conv.wait_for_handle(conv.stats.turns, 5.0)
            log.debug("newest resumption handle saved: %s", saved is not None)
            if speaker is not None:
                await speaker.drain()
    if args.wav:
        _write_wav(Path(args.wav), b"".join(audio))
    return 0


async def _prompt() -> str | None:
    """The next line typed by the user, or None for q/EOF."""
    print("message > ", end="", file=sys.stderr, flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    text = line.strip()
    if not line or text.lower() == "q":
        return None
    return text or await _prompt()


async def _collect(
    events: AsyncIterator[SessionEvent],
    audio: list[bytes],
    speaker: Speaker | None,
    timeout_s: float,
) -> str:
    """Play/keep the reply's audio; return its transcript."""
    words: list[str] = []
    async with asyncio.timeout(timeout_s):
        async for ev in events:
            if isinstance(ev, ModelAudio):
                audio.append(ev.pcm)
                if speaker is not None:
                    speaker.play(ev.pcm)
            elif isinstance(ev, OutputTranscribed):
                words.append(ev.text)
            elif isinstance(ev, TurnCompleted | ServerInterrupted):
                break
    return "".join(words).strip()


@contextlib.asynccontextmanager
async def _speaker(cfg: Config, play: bool) -> AsyncIterator[Speaker | None]:
    if not play:
        yield None
        return
    from device.audio.speaker import Speaker

    async with Speaker(cfg.audio, cfg.state_dir).running() as speaker:
        yield speaker


def _write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(MODEL_RATE)
        w.writeframes(pcm)
