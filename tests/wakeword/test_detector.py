"""Detector: framing of any block size, gaps, the scoring thread and its drop-oldest queue."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import numpy.typing as npt
import pytest

from device.config import WakewordConfig
from device.events import AudioBlock, WakeDetected
from device.wakeword.detector import QUEUE_BLOCKS, Detector

pytestmark = pytest.mark.unit


class LoudnessModel:
    """A stand-in wake-word model: the score is the frame's peak level (fires on loud audio)."""

    name = "loud"
    noise_level = None

    def __init__(self, delay_s: float = 0.0) -> None:
        self.frames: list[npt.NDArray[np.int16]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def score(self, frame: npt.NDArray[np.int16]) -> float:
        self.frames.append(frame.copy())
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        return float(np.abs(frame.astype(np.int32)).max()) / 32768

    def reset(self) -> None:
        self.frames.clear()


def _blocks(audio: npt.NDArray[np.int16], size: int, start: int = 0) -> list[AudioBlock]:
    return [
        AudioBlock(audio[i : i + size].tobytes(), start + i) for i in range(0, len(audio), size)
    ]


@pytest.mark.parametrize("size", [160, 320, 500, 1280, 4000])
def test_any_block_size_gives_the_same_80ms_frames(size: int) -> None:
    audio = (np.arange(12800) % 1000).astype(np.int16)
    model = LoudnessModel()
    det = Detector(WakewordConfig(), model=model)  # type: ignore[arg-type]
    for b in _blocks(audio, size):
        det.process(b)
    assert len(model.frames) == 10
    assert np.array_equal(np.concatenate(model.frames), audio)


def test_detection_reports_the_sample_index_of_the_stream() -> None:
    audio = np.zeros(16000, np.int16)
    audio[8000:9000] = 30000
    det = Detector(WakewordConfig(), model=LoudnessModel())  # type: ignore[arg-type]
    hits = [h for b in _blocks(audio, 320, start=1_000_000) for h in det.process(b)]
    assert len(hits) == 1
    # first loud frame ends at 1_000_000 + 8960; the end estimate lies END_LEAD_S before it
    assert hits[0].end < 1_000_000 + 8960
    assert hits[0].model == "loud"


def test_a_gap_in_the_block_stream_restarts_framing() -> None:
    model = LoudnessModel()
    det = Detector(WakewordConfig(), model=model)  # type: ignore[arg-type]
    det.process(AudioBlock(np.ones(1000, np.int16).tobytes(), 0))
    det.process(AudioBlock(np.full(1280, 7, np.int16).tobytes(), 5000))  # 4000 samples lost
    assert det.gaps == 1
    assert len(model.frames) == 1
    assert np.all(model.frames[0] == 7)


class ListSource:
    def __init__(self, blocks: list[AudioBlock]) -> None:
        self._blocks = list(blocks)

    async def get(self) -> AudioBlock:
        if self._blocks:
            return self._blocks.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_run_scores_on_its_own_thread_and_reports_on_the_loop() -> None:
    audio = np.zeros(32000, np.int16)
    audio[16000:17000] = 30000
    model = LoudnessModel()
    det = Detector(WakewordConfig(), model=model)  # type: ignore[arg-type]
    loop_thread = threading.current_thread().name
    got: asyncio.Queue[tuple[WakeDetected, str]] = asyncio.Queue()
    task = asyncio.create_task(
        det.run(
            ListSource(_blocks(audio, 320)),
            lambda h: got.put_nowait((h, threading.current_thread().name)),
        ),
        name="wake",
    )
    try:
        hit, thread = await asyncio.wait_for(got.get(), 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert thread == loop_thread
    assert model.threads == {"wakeword"}
    assert hit.model == "loud"


async def test_a_slow_scorer_drops_the_oldest_blocks_and_never_blocks_the_reader() -> None:
    n = QUEUE_BLOCKS * 3
    audio = np.zeros(320 * n, np.int16)
    audio[-3000:] = 30000  # loud at the very end: only seen if the newest blocks are kept
    model = LoudnessModel(delay_s=0.02)
    det = Detector(WakewordConfig(), model=model)  # type: ignore[arg-type]
    got: asyncio.Queue[WakeDetected] = asyncio.Queue()
    source = ListSource(_blocks(audio, 320))
    task = asyncio.create_task(det.run(source, got.put_nowait), name="wake")
    try:
        hit = await asyncio.wait_for(got.get(), 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert det.dropped > 0
    assert len(model.frames) < len(audio) // 1280  # the oldest audio was never scored
    assert hit.model == "loud"
