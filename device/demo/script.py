"""The scripted conversation the demo speaks into the virtual microphone (espeak-ng voices).

"Hey Jarvis, what is the capital of France?" in one breath, a follow-up without the wake word once
the answer has played, then silence until the conversation ends by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.app.states import State
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.server import LiveSimulator

Int16 = npt.NDArray[np.int16]
LEAD_S = 0.7
"""Silence before each line: the first audio into an idle null sink is partly lost (test-rig.md)."""


@dataclass(frozen=True)
class Line:
    """One thing the user says: the full audio, and the question as the simulator should hear it."""

    spoken: str
    question: str
    wake_word: bool


SCRIPT = (
    Line("Hey Jarvis, what is the capital of France?", "what is the capital of France", True),
    Line("And what is the capital of Brazil?", "what is the capital of Brazil", False),
)


def question_start(x: Int16, after_s: float = 0.5) -> int:
    """Index where speech resumes after the first pause past `after_s` (the end of the wake word)."""
    frame = MIC_RATE // 50
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    quiet = 0
    for i in range(int(after_s * MIC_RATE) // frame, n):
        if rms[i] < 300:
            quiet += 1
        elif quiet >= 3:
            return i * frame
        else:
            quiet = 0
    return 0


def teach(sim: LiveSimulator, line: Line, audio: Int16) -> None:
    """Register the line with the simulator (which matches audio turns by their loudness envelope).

    After a wake word the device sends from the wake word's estimated end, erring early, so the
    question is also registered with up to 1 s of the wake word's tail in front of it.
    """
    if not line.wake_word:
        sim.register_utterance(line.question, audio)
        return
    start = question_start(audio)
    for lead in np.arange(0.0, 1.0, 0.02):
        sim.register_utterance(line.question, audio[max(0, start - int(lead * MIC_RATE)) :])


class StateLog:
    """Every state entered, with its time; awaitable."""

    def __init__(self) -> None:
        self.entries: list[tuple[State, float]] = []

    def add(self, state: State) -> None:
        """Record a state change (status listener)."""
        if not self.entries or self.entries[-1][0] is not state:
            self.entries.append((state, time.monotonic()))

    async def wait(self, state: State, since: int, within: float) -> tuple[int, float]:
        """(index, time) of the first entry into `state` at or after index `since`."""
        async with asyncio.timeout(within):
            while True:
                for i in range(since, len(self.entries)):
                    if self.entries[i][0] is state:
                        return i, self.entries[i][1]
                await asyncio.sleep(0.02)


async def speak(card: VirtualSoundCard, audio: Int16) -> float:
    """Play into the virtual microphone; returns the time the player finished (speech ended)."""
    proc = card.feed_mic(
        np.concatenate([np.zeros(int(LEAD_S * MIC_RATE), np.int16), audio]), MIC_RATE
    )
    await asyncio.wait_for(asyncio.to_thread(proc.wait), len(audio) / MIC_RATE + 30)
    return time.monotonic()


async def run_script(
    card: VirtualSoundCard,
    states: StateLog,
    say: Callable[[str], None],
    audio: list[Int16],
    follow_up_s: float,
) -> list[float]:
    """Speak each line once the appliance listens; returns each turn's latency (speech end → answer)."""
    mark, _ = await states.wait(State.IDLE, 0, 120)
    latencies: list[float] = []
    for line, pcm in zip(SCRIPT, audio, strict=True):
        if not line.wake_word:
            mark, _ = await states.wait(State.LISTENING, mark, 60)
        say(f"(speaking into the microphone) {line.spoken!r}")
        ended = await speak(card, pcm)
        mark, answered = await states.wait(State.RESPONDING, mark, 60)
        latencies.append(max(0.0, answered - ended))
        say(f"turn latency: speech end → answer playing {latencies[-1]:.2f} s")
    say(f"(silence: the conversation should end after follow_up_s = {follow_up_s:g} s)")
    await states.wait(State.IDLE, mark, follow_up_s + 60)
    return latencies


def synthesize_script() -> list[Int16]:
    """The audio of every line (16 kHz)."""
    return [synthesize(line.spoken, MIC_RATE) for line in SCRIPT]
