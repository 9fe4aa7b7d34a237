"""Wake word: score WAV files, a live score meter, and enrolled voices (enroll, list, forget)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.cli import Handler
from device.config import Config, WakewordConfig
from device.events import MIC_RATE, AudioBlock, WakeDetected

BLOCK_SAMPLES = 320
"""The files are fed in 20 ms blocks, as the microphone delivers them."""
METER_WIDTH = 40


def register(parser: argparse.ArgumentParser) -> Handler:
    """`wakeword test FILE.wav...`, `listen`, `enroll`, `list` and `forget`."""
    sub = parser.add_subparsers(dest="wakeword_command", required=True, metavar="ACTION")
    test = sub.add_parser(
        "test", help="print each file's peak score and detection times (exit 1 if one never fires)"
    )
    test.add_argument("files", nargs="+", metavar="FILE.wav")
    listen = sub.add_parser("listen", help="live score meter on the configured microphone")
    listen.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    for p in (test, listen):
        p.add_argument("--model", help="override wakeword.model")
        p.add_argument("--threshold", type=float, help="override wakeword.threshold")
    enroll = sub.add_parser(
        "enroll",
        help="learn a person's own wake word from WAV files (each: the wake word said once), "
        "or, without files, in a guided session on the microphone",
    )
    enroll.add_argument("--name", required=True, help="the person (a-z, 0-9, '-', '_')")
    enroll.add_argument("files", nargs="*", metavar="FILE.wav")
    enroll.add_argument("--takes", type=int, default=5, help="guided: good takes to collect (>= 4)")
    enroll.add_argument("--force", action="store_true", help="replace a voice of the same name")
    sub.add_parser("list", help="list the enrolled voices")
    forget = sub.add_parser("forget", help="remove an enrolled voice")
    forget.add_argument("name")
    return _run


def _wake_cfg(args: argparse.Namespace, cfg: Config) -> WakewordConfig:
    changes: dict[str, object] = {}
    if args.model:
        changes["model"] = args.model
    if args.threshold is not None:
        changes["threshold"] = args.threshold
    return cfg.wakeword.model_copy(update=changes)


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from device.wakeword import voices_cmd

    command: str = args.wakeword_command
    if command in ("enroll", "list", "forget"):
        return voices_cmd.run(args, cfg)
    wcfg = _wake_cfg(args, cfg)
    if command == "test":
        return test_files([Path(f) for f in args.files], wcfg, Path(cfg.state_dir))
    return asyncio.run(listen(cfg, wcfg, args.seconds))


def read_audio(path: Path) -> npt.NDArray[np.int16]:
    """A 16-bit WAV as 16 kHz mono int16 (other rates are resampled, channels averaged)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit samples, got {8 * w.getsampwidth()}-bit")
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    mono = data.reshape(-1, ch).mean(axis=1) if ch > 1 else data.astype(np.float64)
    if rate != MIC_RATE:
        import soxr

        mono = soxr.resample(mono.astype(np.float32), rate, MIC_RATE, "HQ")
    out: npt.NDArray[np.int16] = np.clip(mono, -32768, 32767).astype(np.int16)
    return out


def test_files(files: list[Path], wcfg: WakewordConfig, state_dir: Path) -> int:
    """Score each file in a fresh detector (1 s of silence before and after); print a line each."""
    from device.wakeword.detector import FrameScore, build_detector, how

    detector = build_detector(wcfg, state_dir)
    missed = 0
    for path in files:
        try:
            audio = read_audio(path)
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            return 2
        detector.reset()
        pad = np.zeros(MIC_RATE, np.int16)
        padded = np.concatenate([pad, audio, pad])
        peak = (0.0, 0)
        micro_peak: tuple[float, int] | None = None  # microWakeWord's model, where it runs
        hits: list[tuple[WakeDetected, int]] = []  # (detection, sample where it was made)

        def on_score(f: FrameScore) -> None:
            nonlocal peak, micro_peak
            if f.base > peak[0]:
                peak = (f.base, f.end)
            if f.micro is not None and (micro_peak is None or f.micro > micro_peak[0]):
                micro_peak = (f.micro, f.end)

        detector.on_score = on_score
        for i in range(0, len(padded), BLOCK_SAMPLES):
            block = AudioBlock(padded[i : i + BLOCK_SAMPLES].tobytes(), i)
            hits += [(h, block.end) for h in detector.process(block)]

        def at(sample: int) -> str:
            return f"{(sample - MIC_RATE) / MIC_RATE:.2f}s"

        fired = "; ".join(
            f"detected at {at(when)} (score {h.score:.2f}, wake word ends ~{at(h.end)}{how(h)})"
            for h, when in hits
        )
        also = (
            ""
            if micro_peak is None
            else f" (microWakeWord {micro_peak[0]:.3f} at {at(micro_peak[1])})"
        )
        print(f"{path}: peak {peak[0]:.3f} at {at(peak[1])}{also}; {fired or 'not detected'}")
        missed += not hits
    return 1 if missed else 0


def meter(score: float, threshold: float, micro: float | None = None) -> str:
    """A one-line bar for a score (| marks the threshold) and, when it runs, microWakeWord's
    model's score beside it."""
    filled = round(score * METER_WIDTH)
    mark = round(threshold * METER_WIDTH)
    bar = "".join(
        "|" if i == mark else ("#" if i < filled else " ") for i in range(METER_WIDTH + 1)
    )
    return f"[{bar}] {score:.2f}" + ("" if micro is None else f"  microWakeWord {micro:.2f}")


async def listen(cfg: Config, wcfg: WakewordConfig, seconds: float) -> int:
    """Show a live score meter (one line, redrawn) and print each detection."""
    from device.audio.mic import Microphone
    from device.wakeword.detector import FrameScore, build_detector, how

    detector = await asyncio.to_thread(build_detector, wcfg, Path(cfg.state_dir))
    mic = Microphone(cfg.audio)
    source = mic.add_consumer("wakeword", 100)
    started = time.monotonic()

    def on_score(f: FrameScore) -> None:
        line = meter(f.base, wcfg.threshold, f.micro)
        print(f"\r{line} {f.end / MIC_RATE:7.1f}s", end="", flush=True)

    def on_detect(hit: WakeDetected) -> None:
        print(
            f"\n{time.monotonic() - started:7.1f}s  {hit.model} (score {hit.score:.2f}{how(hit)})"
        )

    detector.on_score = on_score
    async with mic.running():
        task = asyncio.create_task(detector.run(source, on_detect), name="wake")
        try:
            await asyncio.sleep(seconds if seconds > 0 else float("inf"))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            print()
    return 0
