"""Latencies of the whole daemon in-process (used by bench_daemon).

Real PortAudio on the virtual card, real openWakeWord, the real SDK against the simulator over
TLS, mock pins (tests/app/harness.running_daemon). Times are wall-clock on a shared machine.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.app.states import State
from device.config import Config
from device.demo.script import question_start
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.certs import ensure_certs
from device.simulator.server import LiveSimulator
from tests.app.harness import BUTTON, Rig, running_daemon
from tests.bench.bench_audio import Monitor

KEY = "bench-key"


def teach(sim: LiveSimulator, text: str, audio: np.ndarray) -> None:
    start = question_start(audio)
    for lead in np.arange(0.0, 1.0, 0.02):
        sim.register_utterance(text, audio[max(0, start - int(lead * MIC_RATE)) :])


async def first_audio_at(sim: LiveSimulator, conn_index: int, limit: float = 30.0) -> float:
    """Monotonic time the server first held question audio on connection `conn_index` or later."""
    async with asyncio.timeout(limit):
        while True:
            for c in sim.connections[conn_index:]:
                if c.audio_in():
                    return time.monotonic()
            await asyncio.sleep(0.002)


async def ask(rig: Rig, audio: np.ndarray, sim: LiveSimulator, mon: Monitor) -> dict[str, float]:
    """One spoken question with the wake word: wake→audio sent, audio received→heard."""
    since, conns = len(rig.seen), len(sim.connections)
    rig.play(audio)
    woke = await rig.wait_state(State.CONNECTING, 60, since)
    sent = await first_audio_at(sim, conns)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    heard = await asyncio.to_thread(mon.first, answer.at, True, 10.0)
    return {"wake_to_first_audio_s": sent - woke.at, "model_audio_to_heard_s": heard - answer.at}


async def barge_in_button(rig: Rig, story: np.ndarray, mon: Monitor) -> float:
    """Button press (release) during a long answer → silence at the sink."""
    since = len(rig.seen)
    rig.play(story)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    await asyncio.to_thread(mon.first, answer.at, True, 10.0)
    await asyncio.sleep(1.0)
    pin = rig.factory.pin(BUTTON)
    pin.drive_low()
    await asyncio.sleep(0.1)
    released = time.monotonic()
    pin.drive_high()
    quiet = await asyncio.to_thread(mon.first, released, False, 10.0)
    await rig.wait_state(State.IDLE, 60, since)
    return quiet - released


async def barge_in_server(rig: Rig, story: np.ndarray, talk: np.ndarray, mon: Monitor) -> float:
    """The server's `interrupted` (the user talks over the answer, full duplex) → silence."""
    since = len(rig.seen)
    rig.play(story)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    await asyncio.to_thread(mon.first, answer.at, True, 10.0)
    rig.play(talk)
    back = await rig.wait_state(State.LISTENING, 60, len(rig.seen))
    quiet = await asyncio.to_thread(mon.first, back.at, False, 10.0)
    await rig.wait_state(State.IDLE, 60, since)
    return quiet - back.at


async def stream_gaps(rig: Rig, sim: LiveSimulator, question: np.ndarray, go_away: bool) -> float:
    """Longest gap (s) between audio chunks arriving at the server while the device listens.

    After a spoken question is answered, the device streams the follow-up window (silence) to
    the server; with `go_away` the simulator sends goAway 1 s into that window and the device
    hands over to a new connection. Arrivals are seen by polling the simulator every 2 ms.
    """
    from device.simulator.faults import Fault, FaultAction, When

    since, conns = len(rig.seen), len(sim.connections)
    rig.play(question)
    answer = await rig.wait_state(State.RESPONDING, 60, since)
    mark = rig.seen.index(answer)
    await rig.wait_state(State.LISTENING, 60, mark)
    record = sim.connections[-1]
    if go_away:
        sim.inject(
            Fault(
                FaultAction.GO_AWAY,
                When.AUDIO_IN,
                key=KEY,
                after_chunks=len(record.audio_in()) + 50,
            )
        )
    arrivals: list[float] = []
    count = 0
    while rig.state is State.LISTENING:
        n = sum(len(c.realtime("audio")) for c in sim.connections[conns:])
        if n > count:
            arrivals.append(time.monotonic())
            count = n
        await asyncio.sleep(0.002)
    await rig.wait_state(State.IDLE, 60, since)
    if go_away and len(sim.connections) - conns < 2:
        raise AssertionError("no handover happened")
    return max(b - a for a, b in itertools.pairwise(arrivals[1:]))


def _cfg(tmp: Path, sim: LiveSimulator, duplex: str, follow_up_s: float = 1.0) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(tmp / "state"),
            "live": {"base_url": sim.base_url, "ca_file": str(sim.certs.ca)},
            "audio": {"echo_mode": duplex},
            "conversation": {"follow_up_s": follow_up_s, "no_speech_timeout_s": 4.0},
        }
    )


def _summary(xs: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


async def run_conversations(card: VirtualSoundCard, tmp: Path, trials: int) -> dict[str, Any]:
    """Latencies, `trials` of each: wake→audio sent, audio→heard, barge-ins, stream gaps."""
    question = synthesize("Hey Jarvis, what is the capital of France?", MIC_RATE)
    story = synthesize("Hey Jarvis, tell me a story.", MIC_RATE)
    talk = synthesize("Wait, stop, I have another question.", MIC_RATE)
    out: dict[str, Any] = {}
    sim = LiveSimulator(ensure_certs(tmp / "certs"), api_keys=[KEY])
    async with sim:
        teach(sim, "what is the capital of France", question)
        teach(sim, "tell me a story", story)
        sim.register_utterance("wait stop I have another question", talk)
        mon = Monitor(card)
        try:
            mon.wait_flowing()
            lat: dict[str, list[float]] = {
                "wake_to_first_audio_s": [],
                "model_audio_to_heard_s": [],
            }
            async with running_daemon(_cfg(tmp / "a", sim, "half_duplex"), card, sim, KEY) as rig:
                for _ in range(trials):
                    for k, v in (await ask(rig, question, sim, mon)).items():
                        lat[k].append(v)
                    await rig.wait_state(State.IDLE, 60, len(rig.seen) - 1)
                button = [await barge_in_button(rig, story, mon) for _ in range(trials)]
            out.update({k: _summary(v) for k, v in lat.items()})
            out["barge_in_button_to_silence_s"] = _summary(button)
            async with running_daemon(_cfg(tmp / "b", sim, "full_duplex"), card, sim, KEY) as rig:
                server = [await barge_in_server(rig, story, talk, mon) for _ in range(trials)]
            out["barge_in_interrupted_to_silence_s"] = _summary(server)
            cfg = _cfg(tmp / "c", sim, "half_duplex", follow_up_s=5.0)
            async with running_daemon(cfg, card, sim, KEY) as rig:
                plain = [await stream_gaps(rig, sim, question, False) for _ in range(trials)]
                handover = [await stream_gaps(rig, sim, question, True) for _ in range(trials)]
            out["server_stream_longest_gap_s"] = {
                "without_go_away": _summary(plain),
                "go_away_handover": _summary(handover),
            }
        finally:
            mon.close()
    return out
