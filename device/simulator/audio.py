"""The simulator's ears and mouth: an energy VAD on 16 kHz input, utterance matching, 24 kHz speech.

The simulator cannot transcribe speech. An audio turn's "transcript" is the text of a registered
utterance whose loudness envelope matches the audio (tests register what they play), otherwise an
honest description ("an audio question of 1.8 seconds").
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

IN_RATE = 16000
OUT_RATE = 24000
FRAME = 320  # 20 ms at 16 kHz
SPEECH_RMS = 400.0  # ~ -38 dBFS: above a quiet room, below any spoken word


class VadEvent(Enum):
    """What a block of audio did to the VAD."""

    NONE = "none"
    """Nothing changed."""
    SPEECH_STARTED = "speech_started"
    """Enough speech frames: a user turn began."""
    SPEECH_ENDED = "speech_ended"
    """Silence after speech lasted the configured time: the user turn ended."""


@dataclass
class EnergyVad:
    """Frame-energy VAD: speech after `start_ms` of loud frames, end after `silence_ms` quiet."""

    silence_ms: int = 700
    start_ms: int = 60
    _rest: bytes = b""
    _loud_ms: int = 0
    _quiet_ms: int = 0
    speaking: bool = False
    turn: bytearray = field(default_factory=bytearray)
    """Audio of the current (or just ended) user turn, from shortly before its start."""
    _recent: bytearray = field(default_factory=bytearray)

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Process 16 kHz int16 audio; returns the events it caused, in order."""
        events: list[VadEvent] = []
        data = self._rest + pcm
        n = len(data) // (2 * FRAME) * 2 * FRAME
        self._rest = data[n:]
        for off in range(0, n, 2 * FRAME):
            frame = data[off : off + 2 * FRAME]
            ev = self._frame(frame)
            if ev is not VadEvent.NONE:
                events.append(ev)
        return events

    def _frame(self, frame: bytes) -> VadEvent:
        x = np.frombuffer(frame, np.int16).astype(np.float64)
        loud = float(np.sqrt(np.mean(x * x))) >= SPEECH_RMS
        if not self.speaking:
            self._recent += frame
            del self._recent[: -IN_RATE // 2 * 2]  # keep 0.5 s before the start
            self._loud_ms = self._loud_ms + 20 if loud else 0
            if self._loud_ms >= self.start_ms:
                self.speaking = True
                self._quiet_ms = 0
                self.turn = bytearray(self._recent)
                return VadEvent.SPEECH_STARTED
            return VadEvent.NONE
        self.turn += frame
        self._quiet_ms = 0 if loud else self._quiet_ms + 20
        if self._quiet_ms >= self.silence_ms:
            return self.end()
        return VadEvent.NONE

    def end(self) -> VadEvent:
        """Force the end of the current turn (audioStreamEnd, activityEnd)."""
        if not self.speaking:
            return VadEvent.NONE
        self.speaking = False
        self._loud_ms = 0
        self._recent.clear()
        return VadEvent.SPEECH_ENDED


def _envelope(pcm: npt.NDArray[np.int16], offset: int = 0) -> npt.NDArray[np.float64]:
    """20 ms RMS envelope (dB) from `offset`, leading/trailing silence trimmed, quiet frames
    floored at the speech threshold (the level of a pause between words says nothing)."""
    n = (len(pcm) - offset) // FRAME
    if n <= 0:
        return np.zeros(0)
    x = pcm[offset : offset + n * FRAME].astype(np.float64).reshape(n, FRAME)
    rms = np.sqrt(np.mean(x * x, axis=1))
    loud = np.flatnonzero(rms >= SPEECH_RMS)
    if len(loud) == 0:
        return np.zeros(0)
    env: npt.NDArray[np.float64] = 20 * np.log10(
        np.maximum(rms[loud[0] : loud[-1] + 1], SPEECH_RMS)
    )
    return env


def speech_seconds(pcm: npt.NDArray[np.int16]) -> float:
    """Length of the speech in pcm (16 kHz) with silence at both ends trimmed."""
    return len(_envelope(pcm)) * FRAME / IN_RATE


PHASES = range(0, FRAME, FRAME // 8)
"""Frame alignments the heard audio is tried at: where the 20 ms frames fall in the speech
changes its envelope (r from 0.82 to 1.0 for one question sent six times), as it would not change
what a recogniser hears."""
GRID = np.linspace(0, 1, 200)
"""Envelopes are compared resampled to this many points (speech a little faster still matches)."""


@dataclass
class UtteranceBook:
    """Utterances registered by tests: text + audio, matched by their loudness envelope."""

    _entries: list[tuple[str, int, npt.NDArray[np.float64]]] = field(default_factory=list)
    """(text, envelope frames, envelope resampled to GRID)."""

    def register(self, text: str, pcm16k: npt.NDArray[np.int16]) -> None:
        """Teach the simulator that this audio says `text`."""
        env = _envelope(pcm16k)
        if len(env) == 0:
            raise ValueError("registered utterance contains no speech")
        self._entries.append((text, len(env), np.interp(GRID, np.linspace(0, 1, len(env)), env)))

    def scores(self, pcm16k: npt.NDArray[np.int16]) -> dict[str, float]:
        """Each registered text's envelope correlation with this audio (the best over frame
        alignments; -1.0 where the lengths differ by more than a fifth)."""
        out = {text: -1.0 for text, _, _ in self._entries}
        for offset in PHASES:
            env = _envelope(pcm16k, offset)
            if len(env) < 2:
                continue
            b = np.interp(GRID, np.linspace(0, 1, len(env)), env)
            for text, frames, a in self._entries:
                if abs(len(env) - frames) <= 0.2 * frames + 5:
                    out[text] = max(out[text], float(np.corrcoef(a, b)[0, 1]))
        return out

    def match(self, pcm16k: npt.NDArray[np.int16]) -> str | None:
        """Text of the registered utterance this audio matches best (r >= 0.8), or None."""
        text, r = max(self.scores(pcm16k).items(), key=lambda kv: kv[1], default=("", -1.0))
        return text if r >= 0.8 else None


@functools.lru_cache(maxsize=64)
def speak(text: str) -> bytes:
    """The reply as 24 kHz int16 PCM: espeak-ng speech, or a tone pattern without espeak-ng."""
    from device.simhw.speech import have_espeak, synthesize

    if have_espeak():
        return synthesize(text, OUT_RATE).tobytes()
    log.warning("espeak-ng not installed: the simulator answers with tones")
    return _tones(text)


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """int16 mono PCM at another rate (the whole reply at once)."""
    import soxr

    from device.audio.convert import to_int16

    x = np.frombuffer(pcm, np.int16).astype(np.float32)
    return to_int16(np.asarray(soxr.resample(x, from_rate, to_rate), np.float32)).tobytes()


def _tones(text: str) -> bytes:
    """One 120 ms tone per word (pitch from the word), 40 ms gaps: deterministic, speech-like."""
    out: list[npt.NDArray[np.int16]] = []
    t = np.arange(int(OUT_RATE * 0.12)) / OUT_RATE
    gap = np.zeros(int(OUT_RATE * 0.04), np.int16)
    for word in text.split() or ["..."]:
        freq = 200 + (sum(map(ord, word)) % 40) * 10
        out.append((0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))
        out.append(gap)
    return np.concatenate(out).tobytes()
