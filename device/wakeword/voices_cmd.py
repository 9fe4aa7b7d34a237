"""`livespeaker wakeword enroll | list | forget`: the household's enrolled voices."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from device.config import Config
from device.events import AudioBlock
from device.wakeword.verifier import VoiceVerifier, check_name, voices_dir

if TYPE_CHECKING:
    from device.audio.queues import DropOldestQueue
    from device.wakeword.models import WakeModel

Int16 = npt.NDArray[np.int16]
TAKE_MAX_S = 3.0
"""A guided take records at most this long after the prompt."""
SILENCE_END_S = 0.6
"""A guided take ends this long after the speech stops."""
ATTEMPTS_PER_TAKE = 3


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Dispatch the voice subcommands; exit 0 on success, 1 when a take or name is refused,
    2 when a file cannot be read."""
    state = Path(cfg.state_dir)
    if args.wakeword_command == "list":
        return list_voices(state)
    if args.wakeword_command == "forget":
        return forget(state, args.name)
    return enroll_cmd(args, cfg, state)


def list_voices(state: Path) -> int:
    """One line per enrolled voice."""
    d = voices_dir(state)
    paths = sorted(d.glob("*.npz")) if d.is_dir() else []
    if not paths:
        print(f"no enrolled voices in {d}")
    for p in paths:
        try:
            v = VoiceVerifier.load(p)
        except ValueError as exc:
            print(f"{p.stem}: unreadable ({exc})")
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.stat().st_mtime))
        prints = (
            "voiceprints"
            if v.prints is not None
            else "no voiceprints: enroll again for who_can_wake = 'enrolled'"
        )
        print(f"{v.name}: enrolled {when}, {len(v.templates)} templates, {prints}")
    return 0


def _voice_file(state: Path, name: str) -> Path | None:
    """Where voice `name` is kept; None (and the reason on stderr) when the name is not valid."""
    try:
        check_name(name)
    except ValueError as exc:
        print(f"livespeaker: {exc}", file=sys.stderr)
        return None
    return voices_dir(state) / f"{name}.npz"


def forget(state: Path, name: str) -> int:
    """Remove one enrolled voice."""
    path = _voice_file(state, name)
    if path is None:
        return 1
    if not path.exists():
        print(f"livespeaker: no enrolled voice {name!r} in {path.parent}", file=sys.stderr)
        return 1
    path.unlink()
    print(f"forgot voice {name!r} (restart or reload the service to apply)")
    return 0


def enroll_cmd(args: argparse.Namespace, cfg: Config, state: Path) -> int:
    """Enroll from files or in a guided session; save the voice in state_dir."""
    from device.wakeword.cli import read_audio
    from device.wakeword.enroll import MIN_TAKES, BadTake, enroll
    from device.wakeword.models import load_model

    name: str = args.name
    target = _voice_file(state, name)
    if target is None:
        return 1
    if target.exists() and not args.force:
        print(
            f"livespeaker: voice {name!r} is already enrolled (--force replaces it)",
            file=sys.stderr,
        )
        return 1
    model = load_model(cfg.wakeword.model)
    if args.files:
        takes: list[Int16] = []
        for f in args.files:
            try:
                takes.append(read_audio(Path(f)))
            except (OSError, ValueError, EOFError, wave.Error) as exc:
                print(f"livespeaker: {f}: cannot read: {exc}", file=sys.stderr)
                return 2
    else:
        if args.takes < MIN_TAKES:
            print(f"livespeaker: --takes must be at least {MIN_TAKES}", file=sys.stderr)
            return 1
        takes = asyncio.run(guided(cfg, model, args.takes))
        if len(takes) < args.takes:
            print("livespeaker: enrollment stopped: too many bad takes", file=sys.stderr)
            return 1
    try:
        voice = enroll(name, takes, model)
    except BadTake as exc:
        print(f"livespeaker: {exc}", file=sys.stderr)
        return 1
    try:
        path = voice.save(voices_dir(state))
    except OSError as exc:
        print(f"livespeaker: cannot save the voice in {state}: {exc}", file=sys.stderr)
        return 1
    print(
        f"enrolled voice {name!r} from {len(takes)} takes -> {path} (reload the service to apply)"
    )
    return 0


def _speech_ended(levels: list[float], floor: float) -> bool:
    """Speech was heard and the last SILENCE_END_S has been quiet."""
    quiet = int(SILENCE_END_S * 50)  # 20 ms blocks
    loud = [lv > floor for lv in levels]
    return any(loud) and len(loud) > quiet and not any(loud[-quiet:])


async def guided(cfg: Config, model: WakeModel, wanted: int) -> list[Int16]:
    """Prompt with the wake chime, record each take, check it, ask again when it is bad."""
    from device.audio.earcons import Earcon
    from device.audio.mic import Microphone
    from device.audio.speaker import Speaker
    from device.wakeword.enroll import BadTake, check_take

    mic = Microphone(cfg.audio)
    inbox = mic.add_consumer("enroll", 500)
    speaker = Speaker(cfg.audio, cfg.state_dir)
    takes: list[Int16] = []
    phrase = model.name.replace("_", " ")
    async with mic.running(), speaker.running():
        attempts = 0
        while len(takes) < wanted and attempts < wanted * ATTEMPTS_PER_TAKE:
            attempts += 1
            print(
                f"take {len(takes) + 1} of {wanted}: after the tone, say {phrase!r} once",
                flush=True,
            )
            speaker.play_earcon(Earcon.WAKE)
            await speaker.drain()
            inbox.clear()  # the tone and anything before it is not the take
            take = await _record(inbox)
            try:
                report = check_take(model, take)
            except BadTake as exc:
                print(f"  not used: {exc}", flush=True)
                continue
            print(
                f"  ok: {report.level_dbfs:.0f} dBFS, {report.speech_s:.2f} s, score {report.peak_score:.2f}"
            )
            takes.append(take)
        speaker.play_earcon(Earcon.END)
        await speaker.drain()
    return takes


async def _record(inbox: DropOldestQueue[AudioBlock]) -> Int16:
    blocks: list[AudioBlock] = []
    levels: list[float] = []
    floor = 32768 * 10 ** (-50 / 20)
    deadline = time.monotonic() + TAKE_MAX_S
    while time.monotonic() < deadline:
        try:
            block: AudioBlock = await asyncio.wait_for(inbox.get(), 1.0)
        except TimeoutError:
            break
        blocks.append(block)
        x = np.frombuffer(block.pcm, np.int16).astype(np.float64)
        levels.append(float(np.sqrt(np.mean(x**2))) if len(x) else 0.0)
        if _speech_ended(levels, floor):
            break
    if not blocks:
        return np.zeros(0, np.int16)
    return np.frombuffer(b"".join(b.pcm for b in blocks), np.int16).copy()
