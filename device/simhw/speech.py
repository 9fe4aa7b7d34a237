"""Synthetic speech from espeak-ng, for the simulator's replies, the demo and the tests."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import numpy.typing as npt
import soxr


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed."""


def have_espeak() -> bool:
    """True when espeak-ng can be run."""
    return shutil.which("espeak-ng") is not None


def synthesize(
    text: str, rate: int = 16000, *, voice: str = "en-us", speed: int = 160, pitch: int = 50
) -> npt.NDArray[np.int16]:
    """Speak `text` with espeak-ng; mono int16 samples at `rate`."""
    if not have_espeak():
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", "--", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with wave.open(io.BytesIO(out), "rb") as w:
        src_rate = w.getframerate()
        # espeak-ng streams a WAV header with an unknown length: read what is there.
        raw = w.readframes(w.getnframes() or 1 << 30)
    pcm = np.frombuffer(raw, np.int16)
    if src_rate == rate:
        return np.array(pcm, np.int16)
    out_f = soxr.resample(pcm.astype(np.float32) / 32768.0, src_rate, rate, "HQ")
    resampled: npt.NDArray[np.int16] = np.clip(out_f * 32768.0, -32768, 32767).astype(np.int16)
    return resampled
