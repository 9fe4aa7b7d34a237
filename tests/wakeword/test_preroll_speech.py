"""Pre-roll on real speech: "hey jarvis what's the capital of france" in one breath reaches the
session whole. The detector runs its daemon path (`Detector.run` on its own thread); the audio the
appliance would hand over is `preroll.take_from(detection.end)` and then the live blocks after
`preroll.latest_end`. It is located in the source by cross-correlation."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import numpy.typing as npt
import pytest

from device.config import WakewordConfig
from device.events import MIC_RATE, AudioBlock, WakeDetected
from device.wakeword.detector import Detector
from device.wakeword.preroll import PreRoll
from tests.wakeword import evalset

pytestmark = pytest.mark.integration

BLOCK = 320  # 20 ms, as the microphone delivers
START = 123_456  # the mic has been open a while: sample indices are not 0-based


def locate(needle: npt.NDArray[np.int16], hay: npt.NDArray[np.int16]) -> tuple[int, float]:
    """Offset of `needle` in `hay` by normalised cross-correlation (FFT), and the peak value."""
    a = hay.astype(np.float64)
    b = needle.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)[: len(a) - len(b) + 1]
    csum = np.concatenate([[0.0], np.cumsum(a**2)])
    energy = np.sqrt(np.maximum(csum[len(b) :] - csum[: -len(b)], 1e-9)) * np.linalg.norm(b)
    norm = corr / energy
    k = int(np.argmax(norm))
    return k, float(norm[k])


class Tee:
    """The daemon's wake-word source: every block also goes into the pre-roll."""

    def __init__(self, blocks: list[AudioBlock], preroll: PreRoll) -> None:
        self._q: asyncio.Queue[AudioBlock] = asyncio.Queue()
        for b in blocks:
            self._q.put_nowait(b)
        self._preroll = preroll
        self.delivered = 0

    async def get(self) -> AudioBlock:
        block = await self._q.get()
        self._preroll.add(block)
        self.delivered += 1
        return block


async def handed_audio(
    audio: npt.NDArray[np.int16], cfg: WakewordConfig
) -> tuple[WakeDetected, npt.NDArray[np.int16], int]:
    """Run the detector over `audio` in 20 ms blocks; the audio handed over after the first hit,
    and the sample index (in `audio`) where it starts."""
    blocks = [
        AudioBlock(audio[i : i + BLOCK].tobytes(), START + i) for i in range(0, len(audio), BLOCK)
    ]
    preroll = PreRoll(cfg.preroll_s)
    source = Tee(blocks, preroll)
    detector = await asyncio.to_thread(Detector, cfg)
    got: asyncio.Queue[tuple[WakeDetected, list[AudioBlock], int]] = asyncio.Queue()

    def on_detect(hit: WakeDetected) -> None:
        if got.empty():
            assert preroll.latest_end is not None
            got.put_nowait((hit, preroll.take_from(hit.end), preroll.latest_end))

    task = asyncio.create_task(detector.run(source, on_detect), name="wake")
    try:
        hit, pre, live_from = await asyncio.wait_for(got.get(), 120)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    live = [b for b in blocks if b.start >= live_from]
    handed = pre + live
    for a, b in itertools.pairwise(handed):
        assert a.end == b.start, "gap or duplicate between pre-roll and live audio"
    pcm = np.frombuffer(b"".join(b.pcm for b in handed), np.int16)
    return hit, pcm, handed[0].start - START


@pytest.mark.parametrize(
    ("voice", "question"),
    [("en-us", "what's the capital of france"), ("en-gb", "how tall is mount everest")],
)
async def test_one_breath_question_reaches_the_session_whole(voice: str, question: str) -> None:
    utterance, wake_end = evalset.one_breath(voice, 160, 50, question)
    lead = np.zeros(MIC_RATE, np.int16)
    tail = np.zeros(MIC_RATE // 2, np.int16)
    audio = np.concatenate([lead, utterance, tail])
    wake_end += len(lead)
    hit, pcm, start = await handed_audio(audio, WakewordConfig())

    # The handed audio is the source from `start` on (checked by correlation, not by index maths).
    offset, peak = locate(pcm[: MIC_RATE // 2], audio)
    assert peak > 0.99
    assert offset == start
    late_ms = (start - wake_end) * 1000 / MIC_RATE
    print(
        f"\n{voice}: score {hit.score:.2f}, handed audio starts {late_ms:+.0f} ms from the wake word's end"
    )
    assert late_ms <= 100, "audio handed to the session starts too long after the wake word"
    # ... and it contains the whole question, which is found in it intact.
    q = evalset.say(question, voice, 160, 50)
    q_at, q_peak = locate(q, pcm)
    assert q_peak > 0.99
    assert q_at + len(q) <= len(pcm)
    question_at = (
        wake_end + len(utterance) - (wake_end - len(lead)) - len(q)
    )  # after the 30 ms join
    assert start + q_at == question_at
