"""Noise suppression in openWakeWord's own mel domain (spectral subtraction on 32 mel bands).

Stationary noise (fans, hum, hiss) raises the floor of the log-mel spectrogram the wake-word
model reads; in white noise at 10 dB SNR it sits above the speech in the upper bands. Per band,
the noise power is tracked with minimum statistics (the minimum over the last ~1.5 s, which in
speech falls in the gaps between words), and `over` times the part of it above the digital-silence
floor is subtracted, never going below that floor. Clean audio is left as it is: its minimum *is*
the floor. Cost: a few numpy operations on 8 rows of 32 values per 80 ms frame.

Measured alternatives on the espeak-ng evaluation set (bare engine at 0.5: clean 95 %, white
10 dB 35 %, pink 10 dB 72 %): webrtc-noise-gain (level 2) on the audio before the feature extractor
lowered recall (clean 68 %, white 17 %, pink 45 % on a harder variant of the set where bare scored
78/25/50); pyspeex-noise (gain 4000, -30 dB) lost every detection; input gain (AGC) changed little;
a 16 kHz STFT Wiener filter (512/256, minimum statistics, decision-directed, -20 dB floor) in front
of the features lowered clean recall to 90 % alone and, combined with this, gave no better noisy
recall at zero false accepts; over-subtraction 1.5/2/2.5 instead of 3 let speech in pink noise through
as 2-frame false accepts.
Subtraction here leaves clean speech alone and squashes the scores of noise and of speech in noise,
which is what lets the threshold drop in noise (`noisy_threshold`) without false accepts.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

SILENCE_LEVEL = 3.9636
"""openWakeWord's transformed mel value (log10 power + 2) for digital silence."""


class MelDenoiser:
    """Stateful spectral subtraction on rows of openWakeWord's transformed log-mel features."""

    def __init__(
        self, over: float = 3.0, keep: float = 0.0, window_rows: int = 150, chunk_rows: int = 25
    ) -> None:
        self.over = over
        self.keep = keep
        self._chunk_rows = chunk_rows
        self._mins: deque[FloatArray] = deque(maxlen=max(1, window_rows // chunk_rows))
        self._cur: FloatArray | None = None
        self._cur_rows = 0
        self._floor = np.float32(10.0 ** (SILENCE_LEVEL - 2.0))
        self.noise_level = SILENCE_LEVEL
        """Mean over the bands of the current noise estimate (transformed log-mel units: 1 = 10 dB)."""

    def reset(self) -> None:
        """Forget the noise estimate."""
        self._mins.clear()
        self._cur = None
        self._cur_rows = 0
        self.noise_level = SILENCE_LEVEL

    def follow(self, other: MelDenoiser) -> None:
        """Take on `other`'s noise estimate (its arrays are replaced, never written, so they
        can be shared)."""
        self._mins = deque(other._mins, maxlen=other._mins.maxlen)
        self._cur = other._cur
        self._cur_rows = other._cur_rows
        self.noise_level = other.noise_level

    def _track(self, power: FloatArray) -> FloatArray:
        """Update the running minimum with these rows; return the noise estimate per band."""
        rows_min = power.min(axis=0)
        self._cur = rows_min if self._cur is None else np.minimum(self._cur, rows_min)
        self._cur_rows += len(power)
        if self._cur_rows >= self._chunk_rows:
            self._mins.append(self._cur)
            self._cur = None
            self._cur_rows = 0
        parts = [*self._mins, *([self._cur] if self._cur is not None else [])]
        noise: FloatArray = np.min(parts, axis=0)
        self.noise_level = float(np.mean(np.log10(noise))) + 2.0
        return noise

    def process(self, rows: FloatArray) -> FloatArray:
        """Clean rows (n x 32, transformed log-mel) in stream order."""
        if rows.ndim != 2 or len(rows) == 0:
            return rows
        power = np.power(np.float32(10.0), rows - np.float32(2.0)).astype(np.float32)
        noise = self._track(power)
        excess = np.maximum(noise - self._floor, 0)
        clean = np.maximum(power - self.over * excess, self._floor + self.keep * excess)
        out: FloatArray = (np.log10(clean) + np.float32(2.0)).astype(np.float32)
        return out
