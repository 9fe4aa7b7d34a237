"""Pure audio conversions: native microphone frames -> 16 kHz mono blocks, model audio -> device rate.

No I/O and no PortAudio here, so every step is testable with plain arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from device.events import MIC_RATE, AudioBlock

Int16 = npt.NDArray[np.int16]
Float32 = npt.NDArray[np.float32]

QUALITY = "HQ"
"""soxr quality: HQ keeps speech intact at a small CPU cost (see tests/bench/bench_audio.py)."""


def to_int16(x: npt.NDArray[np.floating]) -> Int16:
    """Float samples in int16 scale -> int16 with rounding and clipping."""
    out: Int16 = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return out


class MicConverter:
    """Interleaved int16 frames at the device's rate/channels -> 16 kHz mono int16 (streaming)."""

    def __init__(self, in_rate: int, channels: int, out_rate: int = MIC_RATE) -> None:
        self.in_rate = in_rate
        self.channels = channels
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=QUALITY)
        )

    def convert(self, raw: bytes) -> Int16:
        """Convert the next chunk of raw interleaved int16 bytes."""
        frames = np.frombuffer(raw, np.int16)
        if self.channels > 1:
            frames = frames[: len(frames) // self.channels * self.channels]
            mono: Float32 = frames.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        else:
            mono = frames.astype(np.float32)
        if self._stream is None:
            return to_int16(mono)
        return to_int16(self._stream.resample_chunk(mono))

    def delay(self) -> int:
        """16 kHz samples held inside the resampler (they come out with the next chunk)."""
        return 0 if self._stream is None else round(self._stream.delay())


class BlockFramer:
    """Cuts a continuous sample stream into fixed-size AudioBlocks stamped with their start index."""

    def __init__(self, block_samples: int, start: int = 0) -> None:
        if block_samples <= 0:
            raise ValueError("block_samples must be positive")
        self.block_samples = block_samples
        self._next_start = start
        self._pending: Int16 = np.zeros(0, np.int16)

    @property
    def position(self) -> int:
        """Sample index of the next block to be emitted."""
        return self._next_start

    @property
    def pending(self) -> int:
        """Samples fed but not yet in a block (they start the next one)."""
        return len(self._pending)

    def feed(self, samples: Int16) -> list[AudioBlock]:
        """Add samples; returns the complete blocks now available (the rest stays pending)."""
        buf = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        n = len(buf) // self.block_samples
        blocks = []
        for i in range(n):
            chunk = buf[i * self.block_samples : (i + 1) * self.block_samples]
            blocks.append(AudioBlock(chunk.tobytes(), self._next_start))
            self._next_start += self.block_samples
        self._pending = buf[n * self.block_samples :].copy()
        return blocks

    def skip(self, samples: int) -> None:
        """Advance the position over samples that were lost (keeps `start` equal to real time)."""
        self._pending = np.zeros(0, np.int16)
        self._next_start += samples


class SpeakerConverter:
    """24 kHz mono int16 bytes -> float32 mono in [-1, 1] at the device rate (streaming)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the resampler's history (after flush(): nothing old may leak out)."""
        self._stream = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, "float32", quality=QUALITY)
        )

    def pending(self) -> int:
        """Output frames held inside the resampler (they come out with the next chunk or last)."""
        return 0 if self._stream is None else round(self._stream.delay())

    def convert(self, pcm: bytes, *, last: bool = False) -> Float32:
        """Convert the next chunk; `last=True` also emits the resampler's tail (end of speech)."""
        x = np.frombuffer(pcm[: len(pcm) // 2 * 2], np.int16).astype(np.float32) / 32768.0
        if self._stream is None:
            return x
        out: Float32 = self._stream.resample_chunk(x, last=last)
        if last:
            self.reset()
        return out
