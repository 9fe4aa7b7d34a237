"""Audio engine benchmark (not a test): `uv run python -m tests.bench.bench_audio [--trials N]`.

On a private PulseAudio rig, each number is measured for the engine and for a baseline in the same
run (plain sounddevice with the same block size and latency setting), so the ratio is meaningful
on a shared, loaded machine:

- speaker latency: `play()` call -> first sound at the sink monitor (median of N trials);
- flush: `flush()` call -> silence at the sink monitor;
- mic CPU: process CPU seconds per second of captured audio (PortAudio thread + loop), for the
  device's native format and for 48 kHz stereo; plus the converter alone on synthetic audio.

The monitor is read by `pacat` through a pipe and each chunk is timestamped when it arrives; that
reader's own delay is in both the engine's and the baseline's numbers. Writes
bench-results/audio.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device.audio.convert import MicConverter
from device.audio.mic import Microphone
from device.audio.speaker import Speaker
from device.config import AudioConfig
from device.events import MODEL_RATE
from device.simhw.pulse import VirtualSoundCard
from tests.audio.rig import wait_flowing, wait_for

MON_RATE = 24000
LOUD = 2000
BLOCK_MS = 20
LATENCY_S = AudioConfig().output_latency_ms / 1000


class Monitor:
    """Reads speaker.monitor through pacat; finds when sound starts/stops, by arrival time."""

    def __init__(self, card: VirtualSoundCard) -> None:
        self._proc = subprocess.Popen(
            ["pacat", "--record", "-d", "speaker.monitor", "--raw", "--format=s16le",
             f"--rate={MON_RATE}", "--channels=1", "--latency-msec=5"],
            env=card.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.chunks: list[tuple[float, np.ndarray]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name="monitor")
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while data := self._proc.stdout.read1(480):  # type: ignore[attr-defined]
            now = time.monotonic()
            with self._lock:
                self.chunks.append((now, np.frombuffer(data[: len(data) // 2 * 2], np.int16)))

    def wait_flowing(self) -> None:
        deadline = time.monotonic() + 20
        while len(self.chunks) < 50:
            if time.monotonic() > deadline:
                raise RuntimeError("monitor recorder delivered nothing")
            time.sleep(0.02)

    def first(self, after: float, loud: bool, limit_s: float = 5.0, level: int = LOUD) -> float:
        """Arrival time of the first chunk after `after` that is louder than `level` (or, not
        `loud`, entirely below a quarter of it)."""
        deadline = time.monotonic() + limit_s
        i = 0
        while time.monotonic() < deadline:
            with self._lock:
                todo = self.chunks[i:]
            for t, x in todo:
                i += 1
                if t < after or len(x) == 0:
                    continue
                peak = int(np.abs(x.astype(np.int32)).max())
                if (peak > level) if loud else (peak < level // 4):
                    return t
            time.sleep(0.001)
        raise RuntimeError("expected sound change never arrived")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(MODEL_RATE * seconds)) / MODEL_RATE
    return (0.5 * 32767 * np.sin(2 * np.pi * 800 * t)).astype(np.int16)


# --- speaker --------------------------------------------------------------------------------


async def speaker_engine(card: VirtualSoundCard, mon: Monitor, trials: int) -> dict[str, float]:
    spk = Speaker(AudioConfig(output_block_ms=BLOCK_MS, volume=100), tempfile.mkdtemp())
    starts, stops = [], []
    async with spk.running():
        await asyncio.sleep(1.5)  # a new client takes a moment before audio flows
        for _ in range(trials):
            t0 = time.monotonic()
            spk.play(tone(3.0).tobytes())
            heard = await asyncio.to_thread(mon.first, t0, True)
            starts.append(heard - t0)
            await asyncio.sleep(0.4)
            t1 = time.monotonic()
            spk.flush()
            silent = await asyncio.to_thread(mon.first, t1, False)
            stops.append(silent - t1)
            await asyncio.sleep(0.4)
    return {"start_s": statistics.median(starts), "flush_s": statistics.median(stops)}


def speaker_baseline(mon: Monitor, trials: int, rate: int, channels: int) -> dict[str, float]:
    import sounddevice as sd

    state = {"on": False, "phase": 0}
    w = 2 * np.pi * 800 / rate

    def callback(out: Any, frames: int, time_info: Any, status: Any) -> None:
        if state["on"]:
            n = np.arange(state["phase"], state["phase"] + frames)
            out[:] = (0.5 * np.sin(w * n))[:, None]
            state["phase"] += frames
        else:
            out.fill(0)

    starts, stops = [], []
    with sd.OutputStream(samplerate=rate, channels=channels, dtype="float32",
                         blocksize=rate * BLOCK_MS // 1000, latency=LATENCY_S, callback=callback):  # fmt: skip
        time.sleep(1.5)
        for _ in range(trials):
            t0 = time.monotonic()
            state["on"] = True
            starts.append(mon.first(t0, True) - t0)
            time.sleep(0.4)
            t1 = time.monotonic()
            state["on"] = False
            stops.append(mon.first(t1, False) - t1)
            time.sleep(0.4)
    return {"start_s": statistics.median(starts), "flush_s": statistics.median(stops)}


# --- microphone -----------------------------------------------------------------------------


async def mic_engine(seconds: float, rate: int | None, channels: int | None) -> dict[str, float]:
    mic = Microphone(AudioConfig(), rate=rate, channels=channels)
    q = mic.add_consumer("bench", 100_000)
    async with mic.running():
        await wait_flowing(mic)
        b0, c0 = mic.progress.blocks, time.process_time()
        await asyncio.sleep(seconds)
        b1, c1 = mic.progress.blocks, time.process_time()
    audio_s = (b1 - b0) * mic.cfg.block_ms / 1000
    assert len(q) > 0
    return {"cpu_per_audio_s": (c1 - c0) / audio_s, "audio_s": audio_s}


async def mic_baseline(seconds: float, rate: int, channels: int) -> dict[str, float]:
    """The canonical sounddevice -> asyncio bridge with no conversion at all."""
    import sounddevice as sd

    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes] = asyncio.Queue()
    got = [0]

    def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        loop.call_soon_threadsafe(q.put_nowait, bytes(indata))

    async def consume() -> None:
        while True:
            got[0] += len(await q.get()) // (2 * channels)

    task = asyncio.create_task(consume(), name="baseline-consumer")
    with sd.RawInputStream(samplerate=rate, channels=channels, dtype="int16",
                           blocksize=rate * BLOCK_MS // 1000, callback=callback):  # fmt: skip
        await wait_for(lambda: got[0] >= rate // 5, 20, "baseline audio")
        f0, c0 = got[0], time.process_time()
        await asyncio.sleep(seconds)
        f1, c1 = got[0], time.process_time()
    task.cancel()
    audio_s = (f1 - f0) / rate
    return {"cpu_per_audio_s": (c1 - c0) / audio_s, "audio_s": audio_s}


def converter_only(rate: int, channels: int, seconds: float = 20.0) -> float:
    """CPU seconds per audio second of MicConverter alone (20 ms chunks of synthetic audio)."""
    rng = np.random.default_rng(0)
    chunk = rng.integers(-8000, 8000, rate * BLOCK_MS // 1000 * channels).astype(np.int16).tobytes()
    conv = MicConverter(rate, channels)
    n = int(seconds * 1000 / BLOCK_MS)
    c0 = time.process_time()
    for _ in range(n):
        conv.convert(chunk)
    return (time.process_time() - c0) / seconds


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


async def run(card: VirtualSoundCard, trials: int, mic_s: float) -> dict[str, Any]:
    mon = Monitor(card)
    try:
        await asyncio.to_thread(mon.wait_flowing)
        eng = await speaker_engine(card, mon, trials)
        base = await asyncio.to_thread(speaker_baseline, mon, trials, 44100, 2)
    finally:
        mon.close()
    results: dict[str, Any] = {"speaker": {"engine": eng, "baseline": base}}
    results["speaker"]["added_latency_s"] = eng["start_s"] - base["start_s"]
    results["speaker"]["latency_ratio"] = ratio(eng["start_s"], base["start_s"])
    results["speaker"]["flush_ratio"] = ratio(eng["flush_s"], base["flush_s"])
    mic: dict[str, Any] = {}
    for label, rate, ch in (("native", None, None), ("48k_stereo", 48000, 2)):
        e = await mic_engine(mic_s, rate, ch)
        b = await mic_baseline(mic_s, rate or 44100, ch or 2)
        mic[label] = {
            "engine": e,
            "baseline": b,
            "ratio": ratio(e["cpu_per_audio_s"], b["cpu_per_audio_s"]),
            "converter_only_cpu_per_audio_s": converter_only(rate or 44100, ch or 2),
        }
    results["mic"] = mic
    return results


def report(r: dict[str, Any], out: Callable[[str], None] = print) -> None:
    s = r["speaker"]
    out("speaker (play -> sound at the sink monitor, median):")
    out(f"  engine   {s['engine']['start_s'] * 1000:7.1f} ms   flush -> silence "
        f"{s['engine']['flush_s'] * 1000:6.1f} ms")  # fmt: skip
    out(f"  baseline {s['baseline']['start_s'] * 1000:7.1f} ms   flag  -> silence "
        f"{s['baseline']['flush_s'] * 1000:6.1f} ms   (raw sounddevice, same block/latency)")  # fmt: skip
    out(f"  added latency {s['added_latency_s'] * 1000:+.1f} ms, ratio {s['latency_ratio']:.2f}; "
        f"flush ratio {s['flush_ratio']:.2f}")  # fmt: skip
    out("microphone (process CPU s per s of audio):")
    for label, m in r["mic"].items():
        out(f"  {label:11s} engine {m['engine']['cpu_per_audio_s']:.4f}  baseline "
            f"{m['baseline']['cpu_per_audio_s']:.4f}  ratio {m['ratio']:.2f}  "
            f"converter alone {m['converter_only_cpu_per_audio_s']:.4f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--mic-seconds", type=float, default=8.0)
    p.add_argument("--out", default="bench-results/audio.json")
    args = p.parse_args(argv)
    with VirtualSoundCard() as card:
        results = asyncio.run(run(card, args.trials, args.mic_seconds))
    report(results)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
