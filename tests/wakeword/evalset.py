"""A wake-word evaluation set made at test time with espeak-ng (cached on disk).

Positives: "hey jarvis" + a question in one breath, in VOICES x SPEEDS x PITCHES, each clean and
mixed with white and pink noise at 10 dB SNR. Negatives: >= 10 minutes of ordinary speech without
the wake word, clean and noisy. The helpers here make single utterances for tests; the accuracy
evaluation is the broader corpus.py.

Clips are laid end to end in one stream with silence between them, so a detector is scored in one
pass the way it runs on the device (no reset between clips).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.simhw.speech import synthesize
from tests.conftest import CACHE
from tests.wakeword import corpus
from tests.wakeword.corpus import Clip, lay_out

VERSION = "v1"
VOICES = (
    "en-us",
    "en",
    "en-gb",
    "en-gb-scotland",
    "en-us+f3",
    "en+m3",
    "en-gb+f2",
    "en-029",
    "en-gb-x-rp",
    "en-us+m7",
)
SPEEDS = (150, 175)
PITCHES = (40, 60)
PAUSE_MS = 200
"""A short natural pause between the wake word and the question (one_breath() has none)."""
SNR_DB = 10.0
GAP_S = 2.0
QUESTIONS = corpus.QUESTIONS[:-1]
Int16 = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Stream:
    """Clips laid end to end (int16 at 16 kHz)."""

    audio: Int16
    clips: tuple[Clip, ...]

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return len(self.audio) / MIC_RATE


def _cached(key: str, make: object) -> Int16:
    path = (
        CACHE / "wakeword-eval" / f"{hashlib.sha256((VERSION + key).encode()).hexdigest()[:20]}.npy"
    )
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    audio: Int16 = make()  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, audio)
    return audio


def trim(x: Int16, floor: int = 200) -> Int16:
    """Cut leading and trailing near-silence."""
    idx = np.flatnonzero(np.abs(x.astype(np.int32)) > floor)
    return x[idx[0] : idx[-1] + 1] if len(idx) else x[:0]


def say(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> Int16:
    """espeak-ng speech, trimmed, cached."""
    return _cached(
        f"say|{text}|{voice}|{speed}|{pitch}",
        lambda: trim(synthesize(text, MIC_RATE, voice=voice, speed=speed, pitch=pitch)),
    )


def one_breath(voice: str, speed: int, pitch: int, question: str) -> tuple[Int16, int]:
    """'hey jarvis' + question with no pause; returns audio and the sample where the wake word ends."""
    wake = say("hey jarvis", voice, speed, pitch)
    rest = say(question, voice, speed, pitch)
    gap = np.zeros(MIC_RATE * 30 // 1000, np.int16)  # 30 ms: a breath-free join
    return np.concatenate([wake, gap, rest]), len(wake)


def _lay_out(parts: list[tuple[str, Int16, int | None]], gap_s: float = GAP_S) -> Stream:
    laid = lay_out("", parts, gap_s)
    return Stream(laid.audio, laid.clips)


def wake_then_question(
    voice: str, speed: int, pitch: int, question: str, pause_ms: int = PAUSE_MS
) -> tuple[Int16, int]:
    """'hey jarvis', a short pause, the question; returns audio and where the wake word ends."""
    wake = say("hey jarvis", voice, speed, pitch)
    rest = say(question, voice, speed, pitch)
    gap = np.zeros(MIC_RATE * pause_ms // 1000, np.int16)
    return np.concatenate([wake, gap, rest]), len(wake)


def positives(pause_ms: int = PAUSE_MS) -> Stream:
    """Every voice x speed x pitch, one question each, clean."""
    parts: list[tuple[str, Int16, int | None]] = []
    for i, (v, s, p) in enumerate(itertools.product(VOICES, SPEEDS, PITCHES)):
        audio, wake_end = wake_then_question(v, s, p, QUESTIONS[i % len(QUESTIONS)], pause_ms)
        parts.append((f"{v} s{s} p{p}", audio, wake_end))
    return _lay_out(parts)


_SUBJECTS = (
    "my neighbour",
    "the old teacher",
    "a friend of mine",
    "the bus driver",
    "our manager",
    "the little girl",
    "your brother",
    "the new doctor",
    "everyone in the village",
    "the chef",
    "my grandmother",
    "the postman",
    "a tall stranger",
    "the children",
    "the gardener",
)
_VERBS = (
    "walked to",
    "talked about",
    "painted",
    "forgot about",
    "cleaned",
    "looked at",
    "visited",
    "wrote a letter about",
    "laughed at",
    "fixed",
    "bought",
    "photographed",
    "sold",
    "found",
)
_OBJECTS = (
    "the red bicycle",
    "the library downtown",
    "a broken umbrella",
    "the river bank",
    "an old piano",
    "the morning newspaper",
    "the football match",
    "a bowl of soup",
    "the school garden",
    "the train station",
    "a box of chocolates",
    "the weather forecast",
    "the kitchen window",
    "a pair of shoes",
    "the mountain road",
    "the birthday party",
)
_TAILS = (
    "yesterday afternoon",
    "before breakfast",
    "last winter",
    "on the way home",
    "after the rain",
    "without telling anyone",
    "for the second time",
    "in a hurry",
    "with great care",
    "again",
)


def sentences(n: int, seed: int = 7) -> list[str]:
    """Ordinary sentences without the wake word."""
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    return [f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)} {pick(_TAILS)}." for _ in range(n)]


def negatives(minutes: float = 10.5) -> Stream:
    """>= `minutes` of ordinary speech: paragraphs of 8 sentences, rotating voices/speeds/pitches."""
    parts: list[tuple[str, Int16, int | None]] = []
    total = 0
    combos = itertools.cycle(itertools.product(VOICES, (150, 175), (40, 60)))
    sents = sentences(2000)
    i = 0
    while total < minutes * 60 * MIC_RATE:
        v, s, p = next(combos)
        text = " ".join(sents[i : i + 8])
        i += 8
        audio = say(text, v, s, p)
        parts.append((f"para{len(parts)} {v}", audio, None))
        total += len(audio)
    return _lay_out(parts, gap_s=0.5)


def _speech_power(x: Int16) -> float:
    f = x.astype(np.float64)
    active = f[np.abs(f) > 200]
    return float(np.mean(active**2)) if len(active) else 1.0


def noise(kind: str, n: int, seed: int) -> npt.NDArray[np.float64]:
    """Unit-power white or pink (1/f power) noise."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n)
        f[0] = f[1]
        w = np.fft.irfft(spec / np.sqrt(f), n)
    elif kind != "white":
        raise ValueError(kind)
    return w / np.sqrt(np.mean(w**2))


def with_noise(stream: Stream, kind: str, snr_db: float = SNR_DB, seed: int = 1) -> Stream:
    """The stream with noise everywhere, at `snr_db` below each clip's speech power."""
    out = stream.audio.astype(np.float64)
    nz = noise(kind, len(out), seed)
    bounds = [0] + [c.end for c in stream.clips[:-1]] + [len(out)]
    for clip, lo, hi in zip(stream.clips, bounds[:-1], bounds[1:], strict=True):
        gain = np.sqrt(_speech_power(stream.audio[clip.start : clip.end]) / 10 ** (snr_db / 10))
        out[lo:hi] += nz[lo:hi] * gain
    return Stream(np.clip(out, -32768, 32767).astype(np.int16), stream.clips)
