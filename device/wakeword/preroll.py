"""Pre-roll: a ring buffer of recent microphone blocks, so the words right after the wake word
(and everything said while the Live session opens) can be sent first, in order.

Blocks carry their sample index (`AudioBlock.start`), so `take_from(detection.end)` followed by
the live blocks after `latest_end` joins without a gap or a duplicate.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from device.events import MIC_RATE, AudioBlock

log = logging.getLogger(__name__)


class PreRoll:
    """Keeps the last `seconds` of microphone audio as AudioBlocks."""

    def __init__(self, seconds: float, rate: int = MIC_RATE) -> None:
        if seconds <= 0:
            raise ValueError("pre-roll length must be positive")
        self._max_samples = int(seconds * rate)
        self._blocks: deque[AudioBlock] = deque()
        self._samples = 0

    def add(self, block: AudioBlock) -> None:
        """Append a block; the oldest blocks fall out once more than `seconds` are held."""
        self._blocks.append(block)
        self._samples += len(block.pcm) // 2
        while self._blocks and self._samples - len(self._blocks[0].pcm) // 2 >= self._max_samples:
            self._samples -= len(self._blocks.popleft().pcm) // 2

    @property
    def earliest(self) -> int | None:
        """Sample index of the oldest audio held (None when empty)."""
        return self._blocks[0].start if self._blocks else None

    @property
    def latest_end(self) -> int | None:
        """Sample index just after the newest audio held (None when empty)."""
        return self._blocks[-1].end if self._blocks else None

    def take_from(self, sample: int) -> list[AudioBlock]:
        """The audio held from sample index `sample` on; the first block is trimmed to start there.

        When `sample` is older than anything held, everything held is returned (and logged).
        """
        if self._blocks and sample < self._blocks[0].start:
            log.warning(
                "pre-roll starts %d samples after the requested index: %d ms lost",
                self._blocks[0].start - sample,
                (self._blocks[0].start - sample) * 1000 // MIC_RATE,
            )
        out: list[AudioBlock] = []
        for block in self._blocks:
            if block.end <= sample:
                continue
            if block.start < sample:
                out.append(AudioBlock(block.pcm[(sample - block.start) * 2 :], sample))
            else:
                out.append(block)
        return out

    def level_db(self, start: int, end: int) -> float:
        """RMS level (dBFS) of the audio held in sample indices [start, end); -120 if none."""
        pcm = b"".join(b.pcm for b in self.take_from(start))
        x = np.frombuffer(pcm, np.int16)[: max(0, end - start)].astype(np.float32)
        if not len(x):
            return -120.0
        return float(10 * np.log10(max(float(np.mean(x * x)) / 32768.0**2, 1e-12)))

    def clear(self) -> None:
        """Forget everything held."""
        self._blocks.clear()
        self._samples = 0
