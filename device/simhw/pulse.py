"""A private PulseAudio server with null sinks: a virtual speaker and a virtual microphone.

Layout (the same as on the test rig):
- sink `speaker`: what the app plays to the default device lands here; record `speaker.monitor`.
- sink `micfeed`: play a WAV here and the app's default microphone (`mic`) hears it.
- source `mic`: remap of `micfeed.monitor`, the default source.

PortAudio reaches it through ALSA's pulse plugin (devices `pulse` and `default`), so sounddevice
works unchanged. Null sinks run on a real-time clock: audio is paced like real hardware.

One way a null sink is not like a sound card: left with no reader on its monitor, it let an
output stream that was stopped and started again (an idle pause, a flush) wait ~1.9 s for its
next callback, after every restart (0.02 s with a reader; measured Dec 2026). A sound card's sink
is clocked by the card whether or not anyone records it, so this card keeps a quiet reader on
`speaker.monitor` while it runs (`pacat --latency-msec=10`, as the speaker recordings have
always had; `sink_clock`): without it the rig stalled a wake chime into the user's question.

Another: by default PulseAudio rewinds a sink when a stream writes into it after a dry spell
(it rewrites what it has rendered ahead but not yet played, so the new sound is heard at once).
A card plays the rewritten audio; a monitor has already passed on the silence it held and cannot
take it back, so every recording of the speaker lost the first ~5 ms of a sound that started
from silence (the head of a reply: 3 of 3 runs of test_speaker's three replies after silence).
The speaker's sink runs with `norewinds=1`: the monitor hears what a card without rewinds (ALSA
on the Pi, no sound server) plays. The echo rooms ran with rewinds until Dec 6 2026: with
norewinds the canceller lost the room then (12, 0, 0 dB). The room's own delay was creeping
(device.simhw.room); with that fixed, the rooms measure 29-50 dB without rewinds
(tests/audio/test_aec.py), so they run without them too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE

REQUIRED_TOOLS = ("pulseaudio", "pactl", "pacat")


class VirtualSoundCardError(RuntimeError):
    """The virtual sound card could not be started."""


class VirtualSoundCard:
    """Start/stop a private PulseAudio server and move audio in and out of it."""

    def __init__(
        self,
        runtime_dir: str | os.PathLike[str] | None = None,
        *,
        mic_rate: int = 48000,
    ) -> None:
        """mic_rate: the microphone's own clock rate (the speaker's sink runs at 48 kHz)."""
        self.mic_rate = mic_rate
        self._own_dir = runtime_dir is None
        self.runtime_dir = Path(runtime_dir or tempfile.mkdtemp(prefix="livespeaker-pulse-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._sink_clock: subprocess.Popen[bytes] | None = None
        """The quiet reader on speaker.monitor that keeps the sink clocked like a card."""
        self._saved_env: dict[str, str | None] = {}
        self.room_voice: Path | None = None
        """While a room (device.simhw.room.EchoRoom) runs: the pipe through which voices reach
        the microphone, mixed into the room's echo by its filter (see play_into_mic)."""

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes that should use this server."""
        return {**os.environ, **self._env_vars()}

    def _env_vars(self) -> dict[str, str]:
        return {
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PULSE_SERVER": f"unix:{self.runtime_dir / 'pulse' / 'native'}",
        }

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and point this process's environment (and PortAudio) at it."""
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise VirtualSoundCardError(
                f"missing {', '.join(missing)}: apt-get install pulseaudio pulseaudio-utils "
                "libasound2-plugins libportaudio2"
            )
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        log = self.runtime_dir / "pa.log"
        cmd = [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--system=no",
            "-L",
            "module-native-protocol-unix",
            "-L",
            "module-null-sink sink_name=speaker rate=48000 norewinds=1",
            "-L",
            f"module-null-sink sink_name=micfeed rate={self.mic_rate}",
            "-L",
            "module-remap-source master=micfeed.monitor source_name=mic",
            "-L",
            "module-always-sink",
            f"--log-target=file:{log}",
        ]
        self._proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise VirtualSoundCardError(
                    f"pulseaudio exited with {self._proc.returncode}: "
                    f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}"
                )
            if self._pactl("info", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise VirtualSoundCardError(f"pulseaudio did not answer within {timeout:.0f} s")
        self._pactl("set-default-sink", "speaker")
        self._pactl("set-default-source", "mic")
        self.sink_clock(True)
        for k, v in self._env_vars().items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v

    def sink_clock(self, on: bool) -> None:
        """Start or stop the quiet reader that keeps the speaker's sink clocked. A room
        (device.simhw.room) stops it while it runs: its own reader on the monitor clocks the
        sink, and with both (at different latencies) the room's delay wandered and the echo
        canceller lost it (0-5 dB in the 60 ms room instead of 23-49)."""
        if on and self._sink_clock is None:
            self._sink_clock = subprocess.Popen(
                ["pacat", "--record", "-d", "speaker.monitor", "--raw", "--latency-msec=10"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        elif not on and self._sink_clock is not None:
            self._sink_clock.kill()
            self._sink_clock.wait(5)
            self._sink_clock = None

    def stop(self) -> None:
        """Stop the server we started (by its pid, never by name) and restore the environment."""
        self.sink_clock(False)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
        if self._own_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The sound server stops answering (SIGSTOP) until the block ends (SIGCONT): a hung
        server or driver, as clients see it."""
        assert self._proc is not None, "the server is not running"
        os.kill(self._proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self._proc.pid, signal.SIGCONT)

    def __enter__(self) -> VirtualSoundCard:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10
        )

    def play_into_mic(self, wav: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
        """Start playing a WAV into the virtual microphone; returns the player process.

        While a room runs, the voice goes through the room's filter, which mixes it into the
        echo, so the room's stream is the microphone's only one (see device.simhw.room: the
        room's delay crept from 35 to 236 ms within 50 s of a test, in steps at the spoken
        turns, measured Dec 2026). The player then ends when the rest of the voice fits in the
        pipe (up to ~2 s early)."""
        if self.room_voice is not None:
            return self._into_room(*read_wav(wav))
        return subprocess.Popen(
            ["pacat", "--playback", "-d", "micfeed", "--file-format=wav", str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def feed_mic(self, samples: npt.NDArray[np.int16], rate: int) -> subprocess.Popen[bytes]:
        """Play raw mono int16 samples into the virtual microphone (non-blocking)."""
        if self.room_voice is not None:
            return self._into_room(samples, rate)
        path = self.runtime_dir / f"feed-{time.monotonic_ns()}.wav"
        write_wav(path, samples, rate)
        return self.play_into_mic(path)

    def _into_room(self, samples: npt.NDArray[np.int16], rate: int) -> subprocess.Popen[bytes]:
        """Write a voice into the running room's pipe, at the room's rate (see play_into_mic)."""
        assert self.room_voice is not None
        if rate != MIC_RATE:
            import soxr

            samples = soxr.resample(samples, rate, MIC_RATE)
        raw = self.runtime_dir / f"voice-{time.monotonic_ns()}.raw"
        raw.write_bytes(np.ascontiguousarray(samples, np.int16).tobytes())
        return subprocess.Popen(
            ["sh", "-c", 'exec cat -- "$0" > "$1"', str(raw), str(self.room_voice)]
        )

    @contextlib.contextmanager
    def record_speaker(self, rate: int = 48000) -> Iterator[SpeakerRecording]:
        """Record the virtual speaker's monitor while the block runs."""
        rec = SpeakerRecording(self, rate)
        try:
            yield rec
        finally:
            rec.stop()


class SpeakerRecording:
    """A running `pacat --record` of speaker.monitor (mono int16 at `rate`)."""

    def __init__(self, card: VirtualSoundCard, rate: int) -> None:
        self.rate = rate
        self._path = card.runtime_dir / f"speaker-{time.monotonic_ns()}.raw"
        self._file = self._path.open("wb")
        self._proc = subprocess.Popen(
            [
                "pacat",
                "--record",
                "-d",
                "speaker.monitor",
                "--raw",
                "--format=s16le",
                f"--rate={rate}",
                "--channels=1",
                "--latency-msec=10",
            ],
            env=card.env,
            stdout=self._file,
            stderr=subprocess.DEVNULL,
        )
        self.samples: npt.NDArray[np.int16] = np.zeros(0, np.int16)

    def wait_until_flowing(self, timeout: float = 5.0) -> None:
        """Block until the recorder delivers data (a new client can take ~1 s to start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._path.stat().st_size > self.rate // 10:
                return
            time.sleep(0.02)
        raise VirtualSoundCardError("speaker recorder delivered no audio")

    def recorded(self) -> int:
        """Samples recorded so far (cheap: the file's size)."""
        return self._path.stat().st_size // 2

    def snapshot(self) -> npt.NDArray[np.int16]:
        """What has been recorded so far."""
        data = self._path.read_bytes()
        return np.frombuffer(data[: len(data) // 2 * 2], np.int16).copy()

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(5)
        self._file.close()
        self.samples = self.snapshot()


def write_wav(path: str | os.PathLike[str], samples: npt.NDArray[np.int16], rate: int) -> None:
    """Write mono int16 samples as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(samples, np.int16).tobytes())


def read_wav(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.int16], int]:
    """Read a 16-bit WAV; multi-channel files are averaged to mono."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {8 * w.getsampwidth()}-bit")
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    if ch > 1:
        data = data.reshape(-1, ch).mean(axis=1).astype(np.int16)
    return data, rate
