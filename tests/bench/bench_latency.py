"""Speaker latency, daemon vs Google's cookbook audio loop (not a test):
`uv run python -m tests.bench.bench_latency [--trials N]`.

One private PulseAudio card, one Live API simulator, one recorder on the speaker sink's monitor,
in one run:

- cookbook: the Live API cookbook's audio loop (`Get_started_LiveAPI.py`): the real SDK, model
  audio put on an asyncio queue, one task writing it to a blocking 24 kHz mono int16 output
  stream (`await asyncio.to_thread(stream.write, chunk)`), the queue cleared on `interrupted`.
  PyAudio is not a dependency here: sounddevice's RawOutputStream in blocking mode makes the same
  PortAudio calls with PyAudio's defaults (1024 frames per buffer, the device's low latency);
- daemon: the whole daemon in-process (tests/app/harness: real wake word, real SDK, full duplex).

Two figures a listener notices, each from the client's receipt of the server message to what
the recorder hears at the monitor: (a) the first model audio of an answer -> its first sound
(any sound at all: the answer begins with ~60 ms of soft syllable, and the daemon plays at
volume 100 here, as the cookbook plays unscaled; until Dec 5 2026 the daemon played at its
default volume against a LOUD threshold, and a blip of the previous earcon ahead of each reply
was what got timed); (b) the
server's `interrupted` (the user talks over a long answer) -> lasting silence (quiet for
SILENT_FOR_S: a pause between words is not silence); and, for the daemon, (c) the button's
release mid-answer -> lasting silence, against the cookbook's (b): clearing its queue is the only
stop it has. The daemon's receipt is when the appliance
entered responding / listening on that message (a hair after the SDK delivered it, which counts
against the daemon). Reports medians, p90 and daemon/cookbook ratios; writes
bench-results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.app.states import State
from device.config import LiveConfig
from device.events import MIC_RATE, MODEL_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.certs import ensure_certs
from device.simulator.server import LiveSimulator
from tests.app.harness import Rig, running_daemon
from tests.bench.bench_audio import LOUD, Monitor
from tests.bench.bench_conversations import KEY, _cfg, teach

Int16 = npt.NDArray[np.int16]
SILENT_FOR_S = 0.3
"""Silence = the monitor stays quiet this long (espeak's pauses between words are shorter)."""
QUIET = LOUD // 4
ONSET = 200
"""A chunk with sound in it (the monitor of a null sink is digital silence otherwise)."""
CHUNK_MS = 20
"""The simulator's reply chunks. The cookbook's interrupted -> silence is bounded by the chunk its
player thread is writing when the queue is cleared: with the simulator's default 100 ms chunks it
is ~155 ms here, with 20 ms chunks it is the 17-29 ms the issue measured against the real server."""
COOKBOOK_FRAMES_PER_BUFFER = 1024
"""PyAudio's default `frames_per_buffer` (the cookbook passes none)."""


FIGURES = {
    "model audio -> heard": ("audio_to_heard_s", "audio_to_heard_s"),
    "interrupted -> silence": ("interrupted_to_silence_s", "interrupted_to_silence_s"),
    "button -> silence": ("button_to_silence_s", "interrupted_to_silence_s"),
}
"""Label: (the daemon's figure, the cookbook's). The cookbook has no button: its only way to stop
is clearing its queue, as it does on `interrupted`, so that is the button's baseline."""


# --- the monitor ----------------------------------------------------------------------------


def heard_at(mon: Monitor, after: float, limit_s: float = 10.0) -> float:
    """Arrival time at the monitor of the first chunk after `after` with any sound in it: the
    answer's first syllable, not its first loud one (the answer's first ~60 ms peak near LOUD,
    so a LOUD threshold timed the answer by whichever syllable happened to cross it at each
    path's volume)."""
    return mon.first(after, True, limit_s, level=ONSET)


def silent_at(mon: Monitor, after: float, limit_s: float = 10.0) -> float:
    """Arrival time of the first quiet chunk after `after` from which it stays quiet SILENT_FOR_S."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        chunks = [(t, x) for t, x in list(mon.chunks) if t >= after and len(x)]
        start: float | None = None
        for t, x in chunks:
            if int(np.abs(x.astype(np.int32)).max()) >= QUIET:
                start = None
            elif start is None:
                start = t
            elif t - start >= SILENT_FOR_S:
                return start
        time.sleep(0.02)
    raise RuntimeError("no lasting silence at the monitor")


# --- the cookbook loop ----------------------------------------------------------------------


class CookbookLoop:
    """The cookbook's receive/play tasks, with the times the measurements need."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.audio_in_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.first_audio = Stamp()
        self.interrupted = Stamp()
        self.turn_complete = Stamp()

    async def receive_audio(self, session: Any) -> None:
        while True:
            async for response in session.receive():
                if data := response.data:
                    self.first_audio.mark()
                    self.audio_in_queue.put_nowait(data)
                    continue
                sc = response.server_content
                if sc is not None and sc.interrupted:
                    self.interrupted.mark()
                    while not self.audio_in_queue.empty():
                        self.audio_in_queue.get_nowait()
                if sc is not None and sc.turn_complete:
                    self.turn_complete.mark()

    async def play_audio(self) -> None:
        while True:
            chunk = await self.audio_in_queue.get()
            await asyncio.to_thread(self.stream.write, chunk)


class Stamp:
    """When something first happened since the last reset."""

    def __init__(self) -> None:
        self.at = 0.0
        self._event = asyncio.Event()

    def mark(self) -> None:
        if not self._event.is_set():
            self.at = time.monotonic()
            self._event.set()

    def reset(self) -> None:
        self._event.clear()

    async def wait(self, limit_s: float = 30.0) -> float:
        async with asyncio.timeout(limit_s):
            await self._event.wait()
        return self.at


async def _talk_over(session: Any, talk: Int16) -> None:
    """Stream the user's speech (then silence) in real time, 20 ms chunks, like a microphone."""
    from google.genai import types

    step = MIC_RATE // 50
    pcm = np.concatenate([talk, np.zeros(MIC_RATE, np.int16)])
    t0 = time.monotonic()
    for i in range(0, len(pcm), step):
        blob = types.Blob(data=pcm[i : i + step].tobytes(), mime_type=f"audio/pcm;rate={MIC_RATE}")
        await session.send_realtime_input(audio=blob)
        await asyncio.sleep(max(0.0, t0 + (i + step) / MIC_RATE - time.monotonic()))


async def cookbook(sim: LiveSimulator, mon: Monitor, trials: int, talk: Int16) -> dict[str, Any]:
    """Both figures for the cookbook loop, `trials` of each, on one session."""
    import sounddevice as sd
    from google.genai import types

    from device.live.setup import make_client

    live = LiveConfig(base_url=sim.base_url, ca_file=str(sim.certs.ca))
    client = make_client(live, KEY)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
    starts: list[float] = []
    stops: list[float] = []
    with sd.RawOutputStream(samplerate=MODEL_RATE, channels=1, dtype="int16",
                            blocksize=COOKBOOK_FRAMES_PER_BUFFER, latency="low") as stream:  # fmt: skip
        async with client.aio.live.connect(model=live.model, config=config) as session:
            loop = CookbookLoop(stream)
            async with asyncio.TaskGroup() as tg:
                rx = tg.create_task(loop.receive_audio(session), name="cookbook-receive")
                play = tg.create_task(loop.play_audio(), name="cookbook-play")
                await asyncio.sleep(1.5)  # a new PulseAudio client takes a moment
                for _ in range(trials):
                    loop.first_audio.reset()
                    loop.turn_complete.reset()
                    await _ask_text(session, "what is the capital of France")
                    got = await loop.first_audio.wait()
                    starts.append(await asyncio.to_thread(heard_at, mon, got) - got)
                    await loop.turn_complete.wait()  # the server is done with this answer
                    await asyncio.to_thread(silent_at, mon, got)  # and it played out
                for _ in range(trials):
                    loop.first_audio.reset()
                    await _ask_text(session, "tell me a story")
                    got = await loop.first_audio.wait()
                    await asyncio.to_thread(heard_at, mon, got)
                    await asyncio.sleep(1.0)
                    loop.interrupted.reset()
                    loop.turn_complete.reset()
                    await _talk_over(session, talk)
                    cut = await loop.interrupted.wait()
                    stops.append(await asyncio.to_thread(silent_at, mon, cut) - cut)
                    await loop.turn_complete.wait()  # the answer to the interruption
                    await asyncio.to_thread(silent_at, mon, time.monotonic())
                rx.cancel()
                play.cancel()
    return {"audio_to_heard_s": _summary(starts), "interrupted_to_silence_s": _summary(stops)}


async def _ask_text(session: Any, text: str) -> None:
    from google.genai import types

    turn = types.Content(role="user", parts=[types.Part(text=text)])
    await session.send_client_content(turns=turn, turn_complete=True)


# --- the daemon -----------------------------------------------------------------------------


async def _daemon_answer(rig: Rig, question: Int16, mon: Monitor) -> float:
    since = len(rig.seen)
    rig.play(question)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    heard = await asyncio.to_thread(heard_at, mon, answer.at)
    await rig.wait_state(State.IDLE, 60, since)
    return heard - answer.at


async def _daemon_interrupted(rig: Rig, story: Int16, talk: Int16, mon: Monitor) -> float:
    since = len(rig.seen)
    rig.play(story)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    await asyncio.to_thread(heard_at, mon, answer.at)
    await asyncio.sleep(1.0)
    mark = len(rig.seen)
    rig.play(talk)
    back = await rig.wait_state(State.LISTENING, 60, mark)
    quiet = await asyncio.to_thread(silent_at, mon, back.at)
    await rig.wait_state(State.IDLE, 60, since)
    return quiet - back.at


async def _daemon_button(rig: Rig, story: Int16, mon: Monitor) -> float:
    since = len(rig.seen)
    rig.play(story)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    await asyncio.to_thread(heard_at, mon, answer.at)
    await asyncio.sleep(1.0)
    released = await asyncio.to_thread(rig.press, 0.05)
    quiet = await asyncio.to_thread(silent_at, mon, released)
    await rig.wait_state(State.IDLE, 60, since)
    return quiet - released


async def daemon(
    card: VirtualSoundCard, sim: LiveSimulator, tmp: Path, mon: Monitor, *, trials: int,
    voices: dict[str, Int16], audio: dict[str, Any], idle_s: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """Both figures for the whole daemon (full duplex), `trials` of each; `idle_s` of quiet
    before each question (past `output_idle_pause_s`, each wake-up finds the output stopped, as
    a speaker that has been idle does)."""
    cfg = _cfg(tmp, sim, "full_duplex")
    # At volume 100 (unity gain), as the cookbook plays its audio unscaled: the same waveform.
    cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"volume": 100, **audio})})
    async with running_daemon(cfg, card, sim, KEY) as rig:
        starts = []
        for _ in range(trials):
            await asyncio.sleep(idle_s)
            starts.append(await _daemon_answer(rig, voices["question"], mon))
        stops = [
            await _daemon_interrupted(rig, voices["story"], voices["talk"], mon)
            for _ in range(trials)
        ]
        presses = [await _daemon_button(rig, voices["story"], mon) for _ in range(trials)]
    return {
        "audio_to_heard_s": _summary(starts),
        "interrupted_to_silence_s": _summary(stops),
        "button_to_silence_s": _summary(presses),
    }


# --- report ---------------------------------------------------------------------------------


def _summary(xs: list[float]) -> dict[str, Any]:
    ordered = sorted(xs)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(xs), "p90": p90, "all": [round(x, 4) for x in xs]}


async def run(
    card: VirtualSoundCard, tmp: Path, trials: int, chunk_ms: int, audio: dict[str, Any],
    *, idle_s: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    voices = {
        "question": synthesize("Hey Jarvis, what is the capital of France?", MIC_RATE),
        "story": synthesize("Hey Jarvis, tell me a story.", MIC_RATE),
        "talk": synthesize("Wait, stop, I have another question.", MIC_RATE),
    }
    sim = LiveSimulator(ensure_certs(tmp / "certs"), api_keys=[KEY], chunk_ms=chunk_ms)
    async with sim:
        teach(sim, "what is the capital of France", voices["question"])
        teach(sim, "tell me a story", voices["story"])
        sim.register_utterance("wait stop I have another question", voices["talk"])
        mon = Monitor(card)
        try:
            await asyncio.to_thread(mon.wait_flowing)
            out = {
                "cookbook": await cookbook(sim, mon, trials, voices["talk"]),
                "daemon": await daemon(
                    card,
                    sim,
                    tmp / "daemon",
                    mon,
                    trials=trials,
                    voices=voices,
                    audio=audio,
                    idle_s=idle_s,
                ),
            }
        finally:
            mon.close()
    for fig, base in FIGURES.values():
        d, c = out["daemon"][fig], out["cookbook"][base]
        out[f"{fig.removesuffix('_s')}_ratio_daemon_vs_cookbook"] = {
            "median": d["median"] / c["median"],
            "p90": d["p90"] / c["p90"],
        }
    return out


def report(r: dict[str, Any]) -> None:
    for label, (fig, base) in FIGURES.items():
        d, c = r["daemon"][fig], r["cookbook"][base]
        ratio = r[f"{fig.removesuffix('_s')}_ratio_daemon_vs_cookbook"]
        print(f"{label:24s} daemon {d['median'] * 1000:6.1f} ms (p90 {d['p90'] * 1000:6.1f})  "
              f"cookbook {c['median'] * 1000:6.1f} ms (p90 {c['p90'] * 1000:6.1f})  "
              f"ratio {ratio['median']:.2f} (p90 {ratio['p90']:.2f})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--chunk-ms", type=int, default=CHUNK_MS, help="the server's audio chunks")
    p.add_argument(
        "--audio",
        default="{}",
        help='daemon [audio] overrides, JSON (e.g. {"output_latency_ms": 40})',
    )
    p.add_argument(
        "--idle-s", type=float, default=0.0,
        help="quiet before each daemon question (6: every wake-up finds the output stopped)",
    )  # fmt: skip
    p.add_argument("--out", default="bench-results/latency.json")
    args = p.parse_args(argv)
    audio = json.loads(args.audio)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as d, VirtualSoundCard() as card:
        results = asyncio.run(
            run(card, Path(d), args.trials, args.chunk_ms, audio, idle_s=args.idle_s)
        )
    results["server_chunk_ms"] = args.chunk_ms
    results["daemon_idle_s"] = args.idle_s
    results["daemon_audio_overrides"] = audio
    report(results)
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
