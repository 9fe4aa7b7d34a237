"""Enrollment: takes of one person saying the wake word -> a VoiceVerifier.

Each take is checked first (a bad take is refused with the reason, so a guided session can ask for
it again): loud enough, not clipped, about as long as a wake word, and recognisable as the wake
word by the base model at all. Then each take and a few copies of it (light noise, a small room,
`augment.variants`) run through the same feature pipeline as the daemon; the embedding windows
around the frame where the base model scored highest become the voice's templates, and the
voiceprints at the same frames their prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.wakeword.augment import active_power, variants
from device.wakeword.features import FRAME_SAMPLES
from device.wakeword.models import WakeModel
from device.wakeword.verifier import WINDOW, VoiceVerifier, check_name, unit_rows, voiceprint

Int16 = npt.NDArray[np.int16]
Float32 = npt.NDArray[np.float32]

MIN_TAKES = 4
MIN_LEVEL_DBFS = -45.0
"""Quieter than this (active speech) is too far from the microphone."""
MAX_CLIPPED = 0.002
"""More than this share of samples at full scale is clipped."""
MIN_SPEECH_S, MAX_SPEECH_S = 0.35, 2.5
"""A wake word said once lasts about half a second to a second and a half."""
MIN_PEAK = 0.01
"""A take the base model does not score at all is not the wake word (or not said clearly)."""
PAD_S = 1.0
SHIFTS = (-1, 0, 1)
"""Templates are taken at the best frame and one frame either side."""


class BadTake(ValueError):
    """A take that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class TakeReport:
    """What was measured on a take."""

    level_dbfs: float
    speech_s: float
    clipped: float
    peak_score: float


def _speech_span(take: Int16, floor: int) -> float:
    idx = np.flatnonzero(np.abs(take.astype(np.int32)) > floor)
    return (idx[-1] - idx[0]) / MIC_RATE if len(idx) else 0.0


def _scan(model: WakeModel, take: Int16) -> tuple[npt.NDArray[np.float32], Float32, Float32]:
    """Base scores, embeddings and voiceprints per frame of the take, padded with silence on
    both sides."""
    pad = np.zeros(int(PAD_S * MIC_RATE), np.int16)
    audio = np.concatenate([pad, take, pad])
    n = len(audio) // FRAME_SAMPLES
    model.reset()
    scores = np.zeros(n, np.float32)
    embs = np.zeros((n, 96), np.float32)
    prints = np.zeros((n, 64), np.float32)
    for k in range(n):
        scores[k] = model.score(audio[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])
        embs[k] = model.embeddings[-1]
        prints[k] = voiceprint(model.mels)
    return scores, embs, prints


def check_take(model: WakeModel, take: Int16) -> TakeReport:
    """Measure a take; BadTake says what is wrong with it."""
    power = active_power(take, floor=300)
    level = 10 * np.log10(max(power, 1e-9) / 32768**2)
    clipped = float(np.mean(np.abs(take.astype(np.int32)) >= 32767)) if len(take) else 0.0
    speech = _speech_span(take, max(300, int(np.sqrt(power) * 0.1)))
    if level < MIN_LEVEL_DBFS or speech == 0:
        raise BadTake(f"too quiet ({level:.0f} dBFS): speak closer to the microphone")
    if clipped > MAX_CLIPPED:
        raise BadTake(f"clipped ({clipped:.1%} of samples at full scale): speak a little softer")
    if speech < MIN_SPEECH_S:
        raise BadTake(f"too short ({speech:.2f} s): say the whole wake word")
    if speech > MAX_SPEECH_S:
        raise BadTake(f"too long ({speech:.1f} s): say only the wake word, once")
    scores, _, _ = _scan(model, take)
    peak = float(scores.max())
    if peak < MIN_PEAK:
        raise BadTake(f"not recognised as {model.name!r} (score {peak:.3f}): say it again clearly")
    return TakeReport(float(level), speech, clipped, peak)


def templates(model: WakeModel, take: Int16, seed: int = 0) -> tuple[Float32, Float32]:
    """Embedding windows of a take and its variants at the base model's best frames, and the
    voiceprint of each."""
    out: list[Float32] = []
    marks: list[Float32] = []
    for i, v in enumerate(variants(take, seed)):
        scores, embs, prints = _scan(model, v)
        best = int(np.argmax(scores))
        for s in SHIFTS:
            end = best + s + 1
            if end - WINDOW >= 0 and end <= len(embs):
                out.append(embs[end - WINDOW : end])
                marks.append(prints[end - 1])
        if i == 0 and not out:
            raise BadTake("too close to the start of the recording")
    return unit_rows(np.stack(out)), np.stack(marks)


def enroll(name: str, takes: Sequence[Int16], model: WakeModel) -> VoiceVerifier:
    """Check every take (BadTake names the first bad one) and build the voice's verifier."""
    check_name(name)
    if len(takes) < MIN_TAKES:
        raise BadTake(f"{len(takes)} takes: enrollment needs at least {MIN_TAKES}")
    for i, take in enumerate(takes, 1):
        try:
            check_take(model, take)
        except BadTake as exc:
            raise BadTake(f"take {i}: {exc}") from None
    made = [templates(model, t, seed=i) for i, t in enumerate(takes)]
    model.reset()
    return VoiceVerifier(
        name, np.concatenate([t for t, _ in made]), np.concatenate([p for _, p in made])
    )
