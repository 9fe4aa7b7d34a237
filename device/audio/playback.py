"""The hand-off between the loop (fills) and the output's thread (drains): PortAudio's callback
or the speaker's writer (device.audio.output).

The loop appends float32 chunks to a deque (append/popleft/clear are atomic in CPython); the
output copies from the head chunk into its block, scaled by the volume, with one
`np.multiply(..., out=)` per chunk: no locks, no allocation. flush() bumps a generation number so the
output also drops the chunk it is half-way through: at most the block being rendered at the
moment of the flush still plays.
"""

from __future__ import annotations

import collections

import numpy as np
import numpy.typing as npt

Float32 = npt.NDArray[np.float32]


class PlaybackBuffer:
    """Chunks of mono float32 audio waiting to be played."""

    def __init__(self) -> None:
        self._chunks: collections.deque[tuple[Float32, bool]] = collections.deque()
        self._head: Float32 | None = None
        self._head_earcon = False
        self._pos = 0
        self._generation = 0
        self._seen_generation = 0
        self.reply_end = 0
        """Frames of the last read_into() up to its last sample that was no earcon (0: none):
        the echo gate's long tail counts from there, its short one from an earcon's end."""

    # --- loop side ------------------------------------------------------------------------

    def push(self, chunk: Float32, *, earcon: bool = False) -> None:
        """Queue audio behind what is already queued (`earcon`: a short sound, not a reply)."""
        if len(chunk):
            self._chunks.append((chunk, earcon))

    def flush(self) -> int:
        """Discard everything queued (and the chunk being played); returns frames discarded."""
        self._generation += 1
        head = self._head
        pending = sum(len(c) for c, _ in list(self._chunks))
        if head is not None:
            pending += max(0, len(head) - self._pos)
        self._chunks.clear()
        return pending

    @property
    def generation(self) -> int:
        """Bumped by every flush(): a block taken at another generation is stale."""
        return self._generation

    def frames(self) -> int:
        """Frames queued (loop side; the head being played is not counted)."""
        return sum(len(c) for c, _ in list(self._chunks))

    def is_empty(self) -> bool:
        """Nothing left to play (the output may still be rendering its last block)."""
        return self._head is None and not self._chunks

    # --- callback side --------------------------------------------------------------------

    def read_into(self, out: Float32, gain: float) -> int:
        """Fill `out` (1-D) from the queue scaled by gain; returns frames written (rest untouched)."""
        if self._seen_generation != self._generation:
            self._seen_generation = self._generation
            self._head = None
            self._pos = 0
        written = 0
        self.reply_end = 0
        want = len(out)
        while written < want:
            head = self._head
            if head is None:
                try:
                    head, self._head_earcon = self._chunks.popleft()
                except IndexError:
                    break
                self._head = head
                self._pos = 0
            take = min(want - written, len(head) - self._pos)
            np.multiply(head[self._pos : self._pos + take], gain, out=out[written : written + take])
            written += take
            if not self._head_earcon:
                self.reply_end = written
            self._pos += take
            if self._pos >= len(head):
                self._head = None
        return written
