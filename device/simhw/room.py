"""A room on the virtual sound card: what the speaker plays comes back into the microphone.

    with VirtualSoundCard() as card, EchoRoom(card, delay_ms=30, attenuation_db=12) as room:
        # the speaker's sound reaches the microphone 30 ms later (the pipes' 25 ms included)

`pacat --record` of the speaker's monitor feeds a filter process that delays, attenuates and
reverberates it (a direct path plus an exponentially decaying tail, FFT overlap-add), and `pacat --playback`
plays the result into the microphone's feed. 16 kHz mono: the band the microphone path keeps.
The user's voice (`VirtualSoundCard.play_into_mic` / `feed_mic` while the room runs) comes in
through a named pipe and the filter mixes it in, so the room's stream is the microphone's only
one. The echo's delay used to creep for good (35 -> 236 ms within 50 s of test_aec_e2e, in
steps at the spoken turns, measured Dec 2026), where a room's path stands still. With the voices
through the filter it still crept (45 -> 380 ms in 160 s) until the filter stopped writing into
a backlogged output pipe (pump); with both, 50 -> 108 ms over 280 s. Whether the second stream
mattered on its own was not tried.

The pipes cannot delay by less than PIPE_DELAY_MS. `LoopbackRoom` is the short room: PulseAudio's
module-loopback from the speaker's monitor into the microphone's feed at a set latency (10 ms
and up) and attenuation, without reverberation. It holds that latency by resampling at a rate it
keeps adjusting: harder on an echo canceller than a real room, whose path stands still.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.wakeword import augment

CHUNK = MIC_RATE // 100
"""Samples moved per step (10 ms)."""
PIPE_LATENCY_MS = 20
"""pacat's buffer on each side of the filter (with less, PulseAudio raises a pipe's latency
after an underrun and the echo's delay creeps up by several ms per answer)."""
MAX_BACKLOG = 3
"""Chunks that may wait in the filter's input before the excess is dropped."""
PIPE_DELAY_MS = 25
"""What the two pipes add to the echo's delay (measured on the rig: 25-27 ms)."""


def room_response(
    delay_s: float, attenuation_db: float, rt60_s: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Direct sound after `delay_s` at -attenuation_db, then a reverberant tail 6 dB below it
    (the wake-word evaluation's room, device.wakeword.augment, delayed and attenuated)."""
    room = 0.5 * augment.room_response(rt60_s, 2.0, rng)  # direct 1.0, tail energy 0.25
    h: npt.NDArray[np.float64] = np.concatenate([np.zeros(int(delay_s * MIC_RATE)), room])
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
        self.args = [str((delay_ms - PIPE_DELAY_MS) / 1000), str(attenuation_db), str(rt60_s)]
        self.args.append(str(seed))
        self._proc: subprocess.Popen[bytes] | None = None
        self._voice: Path | None = None

    def __enter__(self) -> EchoRoom:
        # The filter is a process of its own: a thread in the caller's process (the daemon's, in
        # the tests) is late whenever the GIL is busy, the playback pipe runs dry, PulseAudio
        # raises its latency and the room's delay creeps.
        self.card.sink_clock(False)  # the room's own reader clocks the sink
        voice = self.card.runtime_dir / f"room-voice-{os.getpid()}-{id(self)}"
        os.mkfifo(voice)
        self._voice = voice
        fmt = f"--raw --format=s16le --rate={MIC_RATE} --channels=1"
        lat = f"--latency-msec={PIPE_LATENCY_MS}"
        pipeline = (
            f"pacat --record -d speaker.monitor {fmt} {lat} | "
            f"{shlex.quote(sys.executable)} -m device.simhw.room "
            f"{shlex.join([*self.args, str(voice)])} | "
            f"pacat --playback -d micfeed {fmt} {lat}"
        )
        self._proc = subprocess.Popen(
            ["bash", "-c", pipeline],
            env=self.card.env,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.card.room_voice = voice
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is None:
            return
        self.card.room_voice = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
        self._proc = None
        if self._voice is not None:
            self._voice.unlink(missing_ok=True)
            self._voice = None
        self.card.sink_clock(True)


class LoopbackRoom:
    """The speaker's sound back into the microphone `delay_ms` later (PulseAudio's module-loopback
    latency), `attenuation_db` quieter, without reverberation."""

    def __init__(
        self, card: VirtualSoundCard, *, delay_ms: int = 10, attenuation_db: float = 10.0
    ) -> None:
        self.card = card
        self.delay_ms = delay_ms
        self.attenuation_db = attenuation_db
        self._module: str | None = None

    def _pactl(self, *args: str) -> str:
        out = subprocess.run(
            ["pactl", *args], env=self.card.env, capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.strip()

    def __enter__(self) -> LoopbackRoom:
        self.card.sink_clock(False)  # the loopback clocks the sink (see EchoRoom)
        self._module = self._pactl(
            "load-module",
            "module-loopback",
            "source=speaker.monitor",
            "sink=micfeed",
            f"latency_msec={self.delay_ms}",
            "source_dont_move=true",
            "sink_dont_move=true",
        )
        volume = f"{10 ** (-self.attenuation_db / 20):.4f}"
        # `pactl list sink-inputs`: blocks "Sink Input #N" ... "Owner Module: M"
        for block in self._pactl("list", "sink-inputs").split("Sink Input #")[1:]:
            index = block.split("\n", 1)[0].strip()
            owners = [
                ln.split(":", 1)[1].strip() for ln in block.splitlines() if "Owner Module:" in ln
            ]
            if owners == [self._module]:
                self._pactl("set-sink-input-volume", index, volume)
                return self
        self.__exit__(None, None, None)
        raise RuntimeError("module-loopback's sink input not found")

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._module is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._pactl("unload-module", self._module)
            self._module = None
            self.card.sink_clock(True)


def _queued(fd: int) -> int:
    """Bytes waiting in the pipe `fd` is either end of (Linux answers FIONREAD on both)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


class Voice:
    """The voices waiting in the room's named pipe (read without blocking, 10 ms at a time)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._odd = b""

    def take(self) -> npt.NDArray[np.float64]:
        """Up to CHUNK samples of voice (fewer, or none, when the pipe holds less)."""
        try:
            data = self._odd + os.read(self._fd, 2 * CHUNK - len(self._odd))
        except BlockingIOError:
            data = self._odd
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        return np.frombuffer(data[:cut], np.int16).astype(np.float64)


def pump(
    h: npt.NDArray[np.float64], src: BinaryIO, dst: BinaryIO, voice: Voice | None = None
) -> None:
    """Filter 16 kHz int16 from src into dst through h (FFT overlap-add, 10 ms at a time), and
    mix in what `voice` holds.

    A backlog in either pipe would add to the room's delay for good (both ends run in real
    time, so nothing drains it): in the input pipe (the recorder's first burst, or the filter
    held up) whatever exceeds MAX_BACKLOG chunks is dropped; into the output pipe (the player
    held up: the echo's delay crept 45 -> 380 ms over 160 s of a busy test, measured Dec 2026)
    nothing is written while it holds more than that."""
    size = 1 << (CHUNK + len(h) - 2).bit_length()
    hf = np.fft.rfft(h, size)
    carry = np.zeros(size)
    fd = src.fileno()
    while True:
        waiting = _queued(fd)
        if waiting > MAX_BACKLOG * 2 * CHUNK:
            src.read(waiting // (2 * CHUNK) * 2 * CHUNK - 2 * CHUNK)
        raw = src.read(2 * CHUNK)
        if len(raw) < 2 * CHUNK:
            return
        x = np.frombuffer(raw, np.int16).astype(np.float64)
        carry += np.fft.irfft(np.fft.rfft(x, size) * hf, size)
        out = carry[:CHUNK].copy()
        if voice is not None:
            said = voice.take()
            out[: len(said)] += said
        if _queued(dst.fileno()) <= MAX_BACKLOG * 2 * CHUNK:
            dst.write(np.clip(out, -32768, 32767).astype(np.int16).tobytes())
        dst.flush()
        carry = np.concatenate((carry[CHUNK:], np.zeros(CHUNK)))


def main(argv: list[str]) -> None:
    """`python -m device.simhw.room DELAY_S ATTENUATION_DB RT60_S SEED VOICE_FIFO`: stdin ->
    stdout, with the voices written into VOICE_FIFO mixed in."""
    delay_s, attenuation_db, rt60_s, seed, voice = argv
    h = room_response(
        float(delay_s), float(attenuation_db), float(rt60_s), np.random.default_rng(int(seed))
    )
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        pump(h, sys.stdin.buffer, sys.stdout.buffer, Voice(voice))


if __name__ == "__main__":
    main(sys.argv[1:])
