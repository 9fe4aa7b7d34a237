"""Echo cancellation on the rig: a room feeds the speaker's sound back into the microphone.

The sound card here is its own: a 48 kHz stereo speaker and a 44.1 kHz microphone (two null
sinks, each on its own clock). The room (device.simhw.room) delays the speaker's sound by 30-60 ms,
attenuates it and adds reverberation. Each test measures the same room without the canceller
first, so the echo is there to remove."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.aec import EchoCanceller, EchoReference
from device.audio.echo import EchoGate
from device.audio.mic import Microphone
from device.audio.speaker import Speaker
from device.config import AudioConfig
from device.events import MIC_RATE, MODEL_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.room import EchoRoom
from device.simulator.audio import EnergyVad, VadEvent
from tests.audio.rig import take_all, wait_flowing, wait_for
from tests.conftest import SpeechFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ANSWER = (
    "Once upon a time a small speaker lived on a kitchen shelf. Every morning it listened for "
    "its name and told the weather."
)


@dataclass
class Take:
    """The upload while the answer played (16 kHz), and where the user's words start in it."""

    during: npt.NDArray[np.int16]
    """What was uploaded from the answer's start to its end (withheld blocks as silence)."""
    user_at: float | None
    uncancelled: npt.NDArray[np.int16] | None = None
    """The same span before the echo canceller (when it cancelled), else None."""


class Station:
    """A 48 kHz stereo speaker and a 44.1 kHz microphone, cancelled when `aec`, kept open over
    several answers (as the daemon keeps its canceller)."""

    def __init__(self, card: VirtualSoundCard, *, aec: bool, lock: bool = True) -> None:
        """`lock`: the canceller's echo lock (off: to measure what it does, bench_aec)."""
        cfg = AudioConfig(echo_mode="aec" if aec else "full_duplex")
        self.card = card
        reference = EchoReference() if aec else None
        self.speaker = Speaker(cfg, tempfile.mkdtemp(), rate=48000, channels=2, reference=reference)
        self.canceller = EchoCanceller(reference, lock=lock) if reference is not None else None
        self.mic = Microphone(cfg, rate=44100, channels=1, canceller=self.canceller)
        speaker = self.speaker
        self.gate = EchoGate(  # as the daemon wires it (device/assembly.py)
            cfg.echo_mode,
            cfg.echo_tail_ms,
            learned=self.canceller.learned if self.canceller is not None else None,
            captured_at=self.mic.captured_at,
            heard_until=lambda: speaker.heard_until,
            reply_heard_until=lambda: speaker.reply_heard_until,
            earcon_tail_ms=cfg.earcon_tail_ms,
        )
        self.upload = self.mic.add_consumer("upload", 100_000, gate=self.gate)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Station]:
        async with self.speaker.running(), self.mic.running():
            await wait_flowing(self.mic)
            yield self

    async def answer(
        self,
        answer: npt.NDArray[np.int16],
        *,
        user: npt.NDArray[np.int16] | None = None,
        user_after_s: float = 2.5,
    ) -> Take:
        """Play `answer`; `user` is said `user_after_s` into it. Returns the upload meanwhile."""
        mic = self.mic
        await asyncio.sleep(0.5)
        take_all(self.upload)
        start = mic.position
        self.speaker.play(answer.tobytes())
        player, user_at = None, None
        if user is not None:
            await asyncio.sleep(user_after_s)
            lead = np.zeros(int(0.7 * MIC_RATE), np.int16)  # the rig's sink start (test-rig.md)
            user_at = (mic.position - start) / MIC_RATE + 0.7
            player = self.card.feed_mic(np.concatenate([lead, user]), MIC_RATE)
        await asyncio.wait_for(self.speaker.drain(), 30)
        end = mic.position
        if player is not None:
            await asyncio.to_thread(player.wait, 15)
        await wait_for(lambda: mic.position >= end + MIC_RATE // 5, 10, "the answer's tail")
        during = np.zeros(end - start, np.int16)  # withheld blocks stay silent
        uncancelled = np.zeros_like(during)
        cancelled = False
        for b in take_all(self.upload):
            if b.start >= start and b.end <= end:
                during[b.start - start : b.end - start] = np.frombuffer(b.pcm, np.int16)
                raw = b.pcm if b.uncancelled is None else b.uncancelled
                cancelled |= b.uncancelled is not None
                uncancelled[b.start - start : b.end - start] = np.frombuffer(raw, np.int16)
        return Take(during, user_at, uncancelled if cancelled else None)


def power_db(x: npt.NDArray[np.int16]) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-3))


def vad_starts(x: npt.NDArray[np.int16]) -> list[float]:
    """Seconds into x at which the simulator's voice activity detection hears a turn start."""
    vad, starts = EnergyVad(), []
    step = MIC_RATE // 50
    for i in range(0, len(x) - step + 1, step):
        if VadEvent.SPEECH_STARTED in vad.feed(x[i : i + step].tobytes()):
            starts.append(i / MIC_RATE)
    return starts


ANSWERS = 8
"""Answers in a row: the first two or three after a start are held (the canceller is not yet
trusted with the upload), the rest are measured."""


@pytest.mark.parametrize(
    "delay_ms", [60] if os.environ.get("CI") else [30, 60]
)  # bench_aec runs 20 answers in each room
async def test_the_answer_s_echo_is_25_db_down_and_never_sounds_like_a_user(
    room_card: VirtualSoundCard, speech: SpeechFactory, delay_ms: int
) -> None:
    """Answers in a row, the first with a fresh canceller (the daemon's first after a start:
    the upload opens once the canceller is trusted with it: it has learned the room and the
    echo holds steady against its reference); then one with a user talking over it: the
    simulator's VAD hears them when they start, and their words come through."""
    answer = speech(ANSWER, MODEL_RATE)[: MODEL_RATE * 6]
    user = speech("wait, stop. what is the time in tokyo?")
    with EchoRoom(room_card, delay_ms=delay_ms, attenuation_db=10, rt60_s=0.2):
        async with Station(room_card, aec=False).running() as plain:
            raw = await plain.answer(answer)
        async with Station(room_card, aec=True).running() as cancelled:
            assert cancelled.canceller is not None
            takes, opened = [], []
            for _ in range(ANSWERS):
                opened.append(cancelled.canceller.learned())
                takes.append(await cancelled.answer(answer))
            # Then someone talks over the answer: the canceller keeps their voice.
            talk = await cancelled.answer(answer, user=user)
    erle = [
        power_db(raw.during) - power_db(t.during) for t, o in zip(takes, opened, strict=True) if o
    ]
    print(
        f"room {delay_ms} ms, -10 dB, RT60 0.2 s: echo {power_db(raw.during):.1f} dB; the "
        f"upload held over the first {opened.count(False)} answers; then with AEC "
        f"{', '.join(f'{e:.1f}' for e in erle)} dB less, answer after answer "
        f"({len(raw.during) / MIC_RATE:.1f} s each)"
    )
    assert vad_starts(raw.during), "without the canceller the room's echo is heard as speech"
    assert all(len(take.during) > 4 * MIC_RATE for take in takes)
    # held over the first answer after a start; trusted within LEARN_AT_MOST (30 s) of sound
    assert not opened[0] and opened[-3:] == [True] * 3, opened
    # The rig's room shifts its delay by 1-2 ms now and then (PulseAudio pipes) and an answer
    # then keeps 18-38 dB until the canceller has followed (1 answer in 20, bench_aec): the bar
    # holds for the median answer; every answer must still be well cancelled, and at most one
    # may sound like a user. CI takes eight answers, of which the first two or three are held:
    # with two measured, the median was the mean of the two, and one CI run (Dec 7 2026) had
    # both under the bar (20.5, 24.5 dB); four runs of five answers on the same machine gave
    # medians of 34-48 dB, 4 of 20 answers under 25 dB (19.8-23.6, the 3rd to 5th answers of
    # their runs, when the upload opened after 1.5 s of the speaker's sound).
    assert float(np.median(erle)) >= 25.0
    assert min(erle) >= 12.0
    assert sum(vad_starts(take.during) == [] for take in takes) >= len(takes) - 1

    starts = vad_starts(talk.during)
    assert talk.user_at is not None
    said = talk.during[int((talk.user_at - 0.2) * MIC_RATE) :]
    similarity = envelope_similarity(user, said)
    print(
        f"user's words at {talk.user_at:.2f} s, the VAD heard a turn at {starts}; their "
        f"loudness envelope kept at r = {similarity:.2f} under the answer's residual echo"
    )
    assert len(starts) == 1 and talk.user_at - 0.1 <= starts[0] <= talk.user_at + 0.6
    # Double talk: the answer goes on under the words, and AEC3's suppressor dips them while
    # it does (r 0.57-0.76 measured, 0.73 with no answer playing; unrelated audio ~0).
    assert similarity > 0.45


def envelope_similarity(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> float:
    """Correlation of the 20 ms loudness envelopes (dB) of two recordings of the same words,
    each trimmed to its loud part and stretched to the same length."""
    envs = []
    for x in (a, b):
        n = len(x) // 320
        rms = np.sqrt(np.mean(x[: n * 320].astype(np.float64).reshape(n, 320) ** 2, axis=1))
        loud = np.flatnonzero(rms >= 400)
        env = 20 * np.log10(rms[loud[0] : loud[-1] + 1] + 1.0)
        envs.append(np.interp(np.linspace(0, 1, 200), np.linspace(0, 1, len(env)), env))
    return float(np.corrcoef(envs[0], envs[1])[0, 1])
