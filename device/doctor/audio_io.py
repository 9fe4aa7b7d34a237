"""Blocking record / play-while-recording helpers for the doctor (not for the daemon's audio path).

The PortAudio callbacks only append a copy of the block (no logging, no locks); waiting is bounded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.doctor.gpio import busy
from device.doctor.result import CheckResult, CheckStatus

Int16 = npt.NDArray[np.int16]


class AudioTimeout(RuntimeError):
    """The device delivered (or consumed) less audio than expected in time."""


def device_failed(name: str, what: str, exc: BaseException) -> CheckResult:
    """A check whose recording or playback failed: a warning if the device is only busy (e.g. a
    raw ALSA device the running daemon holds), else a failure."""
    if busy(exc):
        return CheckResult(
            name, CheckStatus.WARN, f"{what} failed: device busy (in use by the daemon?): {exc}"
        )
    return CheckResult(name, CheckStatus.FAIL, f"{what} failed: {exc}")


@dataclass
class Captured:
    """Recorded mono int16 samples and how many overflows PortAudio reported."""

    samples: Int16
    overflows: int


@dataclass
class Played:
    """How many frames the speaker consumed and how many underflows PortAudio reported."""

    frames: int
    underflows: int
    input_frame: int = 0
    """How many microphone frames had been recorded when the playback began (where to look for
    its echo in the recording, however late the microphone stream started)."""


class _Recorder:
    """What a recording callback hands over: a copy of each block, counted."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.frames = 0
        self.overflows = 0

    def callback(self, indata: Any, frames: int, t: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.chunks.append(bytes(indata))
        self.frames += frames


def capture(
    device: int,
    rate: int,
    seconds: float,
    *,
    timeout: float | None = None,
    recorder: _Recorder | None = None,
) -> Captured:
    """Record `seconds` of mono int16 from `device` at `rate`."""
    import sounddevice as sd

    want = int(seconds * rate)
    rec = recorder or _Recorder()
    deadline = time.monotonic() + (timeout if timeout is not None else seconds * 3 + 5)
    with sd.InputStream(
        device=device, samplerate=rate, channels=1, dtype="int16", callback=rec.callback
    ):
        while rec.frames < want:
            if time.monotonic() > deadline:
                raise AudioTimeout(
                    f"microphone delivered {rec.frames / rate:.2f} s of {seconds:.2f} s"
                )
            time.sleep(0.02)
    data = np.frombuffer(b"".join(rec.chunks), np.int16)[:want].copy()
    return Captured(data, rec.overflows)


def play_while_capturing(
    out_device: int,
    out_rate: int,
    signal: Int16,
    in_device: int,
    in_rate: int,
    *,
    lead_s: float = 1.0,
    warmup_s: float = 0.5,
    tail_s: float = 1.0,
) -> tuple[Played, Captured]:
    """Record throughout; once `lead_s` is recorded, play `warmup_s` silence, `signal`, `tail_s`
    silence. The lead is counted in recorded frames, not slept: a loaded machine can take a second
    to start a stream, and the echo must still be found where the playback began."""
    import sounddevice as sd

    # Blocking writes into a generous device buffer: a loaded machine (or a Pi Zero) must not turn
    # the test tone into a string of underruns. The silence before lets a new PulseAudio client
    # start flowing; the silence after keeps the stream open until the tone has left the buffer.
    block = int(out_rate * 0.05)
    pcm = np.concatenate(
        [
            np.zeros(int(out_rate * warmup_s), np.int16),
            signal,
            np.zeros(int(out_rate * tail_s), np.int16),
        ]
    )
    total_s = lead_s + len(pcm) / out_rate + 1.0
    recorder = _Recorder()
    rec_result: list[Captured] = []
    errors: list[BaseException] = []

    def record() -> None:
        try:
            rec_result.append(capture(in_device, in_rate, total_s, recorder=recorder))
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    thread = threading.Thread(target=record, name="doctor-capture", daemon=True)
    thread.start()
    deadline = time.monotonic() + lead_s * 3 + 5
    while recorder.frames < lead_s * in_rate and not errors and thread.is_alive():
        if time.monotonic() > deadline:
            raise AudioTimeout(
                f"microphone delivered {recorder.frames / in_rate:.2f} s of {lead_s:.2f} s"
            )
        time.sleep(0.01)
    input_frame = recorder.frames
    written = underflows = 0
    if not errors:
        with sd.OutputStream(
            device=out_device, samplerate=out_rate, channels=1, dtype="int16", latency=0.3
        ) as stream:
            for off in range(0, len(pcm), block):
                if stream.write(pcm[off : off + block].reshape(-1, 1)):
                    underflows += 1
                written = off + block
    thread.join(total_s * 3 + 10)
    if errors:
        raise errors[0]
    if not rec_result:
        raise AudioTimeout("microphone recording did not finish")
    tone = max(0, min(written - int(out_rate * warmup_s), len(signal)))
    return Played(tone, underflows, input_frame), rec_result[0]


def dbfs(x: npt.NDArray[np.floating[Any]] | float) -> Any:
    """Amplitude relative to int16 full scale, in dB (floored at -120)."""
    return 20 * np.log10(np.maximum(np.asarray(x, np.float64) / 32768.0, 1e-6))


def block_rms(samples: Int16, rate: int, block_s: float = 0.02) -> npt.NDArray[np.float64]:
    """RMS of each block (int16 units)."""
    n = max(1, int(rate * block_s))
    usable = len(samples) // n * n
    if usable == 0:
        return np.zeros(0)
    blocks = samples[:usable].astype(np.float64).reshape(-1, n)
    return np.asarray(np.sqrt((blocks**2).mean(axis=1)))


def tone_levels(
    samples: Int16, rate: int, freq: float, block_s: float = 0.05
) -> npt.NDArray[np.float64]:
    """Amplitude of the `freq` component in each block (int16 units, Hann-windowed FFT)."""
    n = max(16, int(rate * block_s))
    usable = len(samples) // n * n
    if usable == 0:
        return np.zeros(0)
    blocks = samples[:usable].astype(np.float64).reshape(-1, n)
    win = np.hanning(n)
    spec = np.abs(np.fft.rfft(blocks * win, axis=1))
    k = round(freq * n / rate)
    band = spec[:, max(0, k - 1) : k + 2].max(axis=1)
    return np.asarray(band * 2 / win.sum())
