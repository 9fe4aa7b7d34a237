"""The model's audio as the server labels it -> what the speaker plays (24 kHz mono int16).

    audio = ModelAudioIn()
    pcm = audio.take(part.inline_data.mime_type, part.inline_data.data)   # b"" if unplayable
    audio.end_turn()                                                      # turn over/interrupted

The protocol sends `audio/pcm;rate=24000` (16-bit little-endian mono). The label is read rather
than assumed: PCM at another rate is resampled to 24 kHz (one resampler per turn, so its history
never crosses into the next answer); a chunk that ends mid-sample keeps its odd byte for the next
chunk instead of shifting every later sample by a byte; audio in a format the speaker cannot
play is dropped with one error per turn in the journal, never played as noise.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr

from device.audio.convert import QUALITY, to_int16
from device.events import MODEL_RATE

log = logging.getLogger("device.live.session")

PCM = "audio/pcm"


def parse_rate(mime_type: str | None) -> int | None:
    """The sample rate of `audio/pcm[;rate=N]` (no rate: MODEL_RATE); None for anything else."""
    kind, *params = [p.strip() for p in (mime_type or PCM).split(";")]
    if kind.lower() != PCM:  # (audio/L16 is big-endian: not what this plays)
        return None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            try:
                rate = int(value.strip())
            except ValueError:
                return None
            return rate if 4000 <= rate <= 192000 else None
    return MODEL_RATE


class ModelAudioIn:
    """One conversation's incoming model audio, turn by turn."""

    def __init__(self) -> None:
        self._odd = b""
        self._rate = MODEL_RATE
        self._resampler: soxr.ResampleStream | None = None
        self._refused: str | None = None
        self.dropped_bytes = 0
        """Audio received in a format the speaker cannot play (this conversation)."""

    def take(self, mime_type: str | None, data: bytes) -> bytes:
        """This chunk as 24 kHz mono int16 bytes (b"" when it cannot be played, or holds less
        than one sample)."""
        rate = parse_rate(mime_type)
        if rate is None:
            self.dropped_bytes += len(data)
            if self._refused != mime_type:
                self._refused = mime_type
                log.error(
                    "the server sent audio as %r, which this speaker cannot play: dropped",
                    mime_type,
                )
            return b""
        if rate != self._rate:  # a new rate from here on (a new turn's, or mid-turn)
            self._rate, self._odd = rate, b""
            self._resampler = (
                None
                if rate == MODEL_RATE
                else soxr.ResampleStream(rate, MODEL_RATE, 1, "float32", quality=QUALITY)
            )
            if rate != MODEL_RATE:
                log.info("the server's audio is %d Hz: resampled to %d Hz", rate, MODEL_RATE)
        data = self._odd + data
        whole = len(data) // 2 * 2
        self._odd = data[whole:]
        pcm = data[:whole]
        if self._resampler is None or not pcm:
            return pcm
        x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        return to_int16(self._resampler.resample_chunk(x) * 32768.0).tobytes()

    def end_turn(self) -> bytes:
        """The turn is over (completed or interrupted): what the resampler still held (b"" at
        24 kHz), and a clean start for the next turn."""
        tail = b""
        if self._resampler is not None:
            out = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            tail = to_int16(out * 32768.0).tobytes()
            self._resampler = soxr.ResampleStream(
                self._rate, MODEL_RATE, 1, "float32", quality=QUALITY
            )
        self._odd = b""
        self._refused = None
        return tail
