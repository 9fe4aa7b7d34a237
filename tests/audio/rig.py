"""Helpers for the audio tests on the PulseAudio rig (every wait bounded)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import numpy.typing as npt

from device.audio.mic import Microphone
from device.audio.queues import DropOldestQueue
from device.events import AudioBlock
from device.simhw.pulse import SpeakerRecording


async def wait_for(cond: object, limit_s: float, what: str, poll_s: float = 0.02) -> None:
    """Poll a zero-argument callable until it returns true."""
    assert callable(cond)
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)


async def wait_flowing(mic: Microphone, limit_s: float = 20.0) -> None:
    """A new PulseAudio client can take seconds before audio flows: wait for real blocks."""
    start = mic.progress.blocks
    await wait_for(lambda: mic.progress.blocks >= start + 10, limit_s, "microphone blocks")


def take_all(q: DropOldestQueue[AudioBlock]) -> list[AudioBlock]:
    """Everything queued right now."""
    out = []
    while len(q):
        out.append(q.get_nowait())
    return out


def samples(blocks: list[AudioBlock]) -> npt.NDArray[np.int16]:
    """The blocks' audio joined."""
    return np.frombuffer(b"".join(b.pcm for b in blocks), np.int16)


async def wait_recording(rec: SpeakerRecording, limit_s: float = 20.0) -> None:
    """Wait until the speaker recorder delivers data."""
    await asyncio.wait_for(asyncio.to_thread(rec.wait_until_flowing, limit_s), limit_s + 5)


def loud(x: npt.NDArray[np.int16], threshold: int = 1000) -> npt.NDArray[np.intp]:
    """Indices of samples louder than threshold."""
    return np.nonzero(np.abs(x.astype(np.int32)) > threshold)[0]


def busy(stop: threading.Event) -> None:
    """Pure Python work that holds the GIL between the interpreter's switches (a daemon's busy
    loop beside the audio callbacks), until `stop` is set."""
    x = 0
    while not stop.is_set():
        for i in range(10_000):
            x += i
