"""A room on the virtual sound card: what the speaker plays comes back into the microphone.

    with VirtualSoundCard() as card, EchoRoom(card, delay_ms=30, attenuation_db=12) as room:
        ...                                # the speaker's sound reaches the mic, as in a kitchen
        # the speaker's sound reaches the microphone 30 ms later (the pipes' 25 ms included)

`pacat --record` of the speaker's monitor feeds a thread that delays, attenuates and reverberates
it (a direct path plus an exponentially decaying tail, FFT overlap-add), and `pacat --playback`
plays the result into the microphone's feed, where it mixes with whatever else is played into
the microphone (the user's voice). 16 kHz mono: the band the microphone path keeps.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from types import TracebackType

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard

CHUNK = MIC_RATE // 100
"""Samples moved per step (10 ms)."""
PIPE_LATENCY_MS = 20
"""pacat's buffer on each side of the filter (with less, PulseAudio raises a pipe's latency
after an underrun and the echo's delay creeps up by several ms per answer)."""
PIPE_DELAY_MS = 25
"""What the two pipes add to the echo's delay (measured on the rig: 25-27 ms)."""


def room_response(
    delay_s: float, attenuation_db: float, rt60_s: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Direct sound after `delay_s` at -attenuation_db, then a reverberant tail 6 dB below it."""
    d = int(delay_s * MIC_RATE)
    n = int(rt60_s * MIC_RATE)
    t = np.arange(n) / MIC_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / max(rt60_s, 1e-3))
    tail[: int(0.003 * MIC_RATE)] = 0
    tail *= 0.5 / max(float(np.sqrt(np.sum(tail**2))), 1e-9)
    h = np.zeros(d + n)
    h[d] = 1.0
    h[d:] += tail
    return h * 10 ** (-attenuation_db / 20)


class EchoRoom:
    """Feeds the virtual speaker's sound back into the virtual microphone through a room."""

    def __init__(
        self,
        card: VirtualSoundCard,
        *,
        delay_ms: float = 30.0,
        attenuation_db: float = 12.0,
        rt60_s: float = 0.2,
        seed: int = 0,
    ) -> None:
        """delay_ms: from the speaker's sink to the microphone, the pipes' PIPE_DELAY_MS included."""
        if delay_ms < PIPE_DELAY_MS:
            raise ValueError(f"the rig's room delays by at least {PIPE_DELAY_MS} ms")
        self.card = card
        self.h = room_response(
            (delay_ms - PIPE_DELAY_MS) / 1000, attenuation_db, rt60_s, np.random.default_rng(seed)
        )
        self._procs: list[subprocess.Popen[bytes]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> EchoRoom:
        common = ["--raw", "--format=s16le", f"--rate={MIC_RATE}", "--channels=1"]
        lat = f"--latency-msec={PIPE_LATENCY_MS}"
        rec = subprocess.Popen(
            ["pacat", "--record", "-d", "speaker.monitor", *common, lat],
            env=self.card.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        play = subprocess.Popen(
            ["pacat", "--playback", "-d", "micfeed", *common, lat],
            env=self.card.env,
            stdin=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._procs = [rec, play]
        self._thread = threading.Thread(target=self._pump, args=(rec, play), daemon=True)
        self._thread.start()
        return self

    def _pump(self, rec: subprocess.Popen[bytes], play: subprocess.Popen[bytes]) -> None:
        assert rec.stdout is not None and play.stdin is not None
        h = self.h
        size = 1 << (CHUNK + len(h) - 2).bit_length()
        hf = np.fft.rfft(h, size)
        carry = np.zeros(size)
        while not self._stop.is_set():
            raw = rec.stdout.read(2 * CHUNK)
            if len(raw) < 2 * CHUNK:
                return
            x = np.frombuffer(raw, np.int16).astype(np.float64)
            y = np.fft.irfft(np.fft.rfft(x, size) * hf, size)
            carry += y
            out = np.clip(carry[:CHUNK], -32768, 32767).astype(np.int16)
            carry = np.concatenate((carry[CHUNK:], np.zeros(CHUNK)))
            try:
                play.stdin.write(out.tobytes())
                play.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self._thread is not None:
            self._thread.join(5)
        for p in self._procs:
            for pipe in (p.stdin, p.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
