"""Personal wake-word verifiers: a household member's own "hey jarvis", recognised in plain numpy.

Enrollment keeps, per take, the speech embeddings (openWakeWord's 96-value features, one per 80 ms)
of the 1.28 s window where the base model scored highest, a frame either side, and copies of the
take in a little noise and a small room: the voice's *templates*. At run time, on every frame
where the base model's score reaches `FAINT_GATE` (`consulted`), the newest window is compared
with each template (cosine similarity per 80 ms row, averaged over the window); the best match is
the voice's similarity. A similarity of `MATCH` or more accepts where the base model scored `GATE`
or more, `FAINT_MATCH` where it scored less (`required_match`). The wake word of someone else, or
any other speech by the enrolled person, matches far less (see the evaluation in tests/wakeword/).

The speech embedding says far more about *what* was said than *who* said it, so for
`who_can_wake = "enrolled"` each template also has a *voiceprint*: the shape of the spectrum (mean
and spread of each of openWakeWord's 32 mel bands, level removed) over the loud rows of the same
1.28 s, after subtracting the background measured in the second before it. Another voice saying
the wake word matches the templates but not the prints; noise that was there before the wake word
is taken out of it first. A window is that voice's when its print lies within `PRINT_MATCH` of one
of the voice's prints.

Inference is a matrix product over a few hundred kilobytes of templates; nothing here imports more
than numpy. Files: `state_dir/voices/NAME.npz` (0600), written atomically.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

WINDOW = 16
"""Embeddings per template (1.28 s), as many as the built-in classifiers read."""
GATE = 0.01
"""Base-model score from which a frame is compared with the enrolled voices' templates at MATCH."""
MATCH = 0.84
"""Similarity (mean cosine of the window's rows) that accepts a frame as an enrolled voice.
Chosen on the evaluation's tuning voices only (9 voices, 3 synthesizers, each enrolled from 4
takes): GATE 0.01 / MATCH 0.84 gave 0.25 false accepts per hour per enrolled voice over 1.3 h of
negatives, its own renditions recalled 94 % clean and 70 % over all conditions by the verifier
alone; 0.80 gave 5.1 per hour, 0.86 none but 64 %. Cohort normalisation (similarity minus the
best match among other voices' wake words) and a per-voice logistic regression were measured too
and did not do better at 0.5 false accepts per hour: the speech embedding carries what was said far
more than who said it."""
FAINT_GATE = 1e-4
"""Frames the base model scores from here up to GATE are compared too, at FAINT_MATCH: in white,
pink and far-field noise most of an enrolled voice's missed wake words never reached GATE (tuning
voices, 5 dB white: 23 of 23 misses) though their windows matched the templates at 0.9 or more."""
FAINT_MATCH = 0.88
"""The similarity a frame scored below GATE needs. Chosen with FAINT_GATE on the tuning voices only
(`python -m tests.wakeword.tune_verifier`)."""
PRINT_ROWS = 128
"""Mel rows (10 ms each) a voiceprint describes: the embedding window's 1.28 s."""
NOISE_ROWS = 100
"""Rows before those whose mean power is the background subtracted first (1 s)."""
MEL_ROWS = PRINT_ROWS + NOISE_ROWS
"""Rows a voiceprint reads (the detector's mel history holds more)."""
SUBTRACT = 1.5
"""Background power subtracted, times its mean (over-subtraction: speech-like noise varies)."""
FLOOR = 0.05
"""What subtraction leaves at least, as a share of a band's power."""
LOUD = 0.4
"""Rows whose level is below this quantile of the window are left out (pauses, noise)."""
SPAN = 3.0
"""Rows more than this below the loudest (log10 power: 30 dB) are not speech either."""
PRINT_MATCH = 2.5
"""Euclidean distance between prints within which a window is the enrolled voice's. Chosen with
QUIET_DB on the evaluation's tuning voices only (`python -m tests.wakeword.tune_voiceprint`: 9
voices each enrolled from 4 takes, 3 renditions of every voice in 8 conditions, enrolled-only
mode): other voices' wake words let through 48 % -> 23 % (clean 84 -> 19 %, room 80 -> 19 %),
the voice's own renditions 67 % -> 65 % (clean 96 -> 93 %, room 89 -> 85 %). 2.0 let 18 % of
the others through but kept 58 % of its own (room 70 %): a reverberant rendition of the voice
itself drifts that far."""
QUIET_DB = 15.0
"""Below this (the wake word's loud rows over the background before it, dB), noise has changed the
print more than voices differ: the voice's templates alone decide (in 10 dB music the print check
kept 0 % of the voice's own wake words; 20-30 dB let more of the others through in white and pink
noise at no gain)."""
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
FORMAT = 2
"""1: templates only (before voiceprints; still read, see `VoiceVerifier.prints`)."""

Float32 = npt.NDArray[np.float32]


def listen(mels: Float32) -> tuple[Float32, float]:
    """The voiceprint of the newest PRINT_ROWS mel rows (openWakeWord's `log10(power) + 2`
    units), with the mean power of the NOISE_ROWS before them subtracted (64 values), and how far
    (dB) those rows' loud part stands above that background."""
    lin = np.power(10.0, mels[-MEL_ROWS:].astype(np.float64) - 2)
    noise = lin[:-PRINT_ROWS].mean(0) if len(lin) > PRINT_ROWS else np.zeros(lin.shape[1])
    speech = lin[-PRINT_ROWS:]
    rows = np.log10(np.maximum(speech - SUBTRACT * noise, FLOOR * speech) + 1e-12)
    level = rows.mean(1)
    loud = (level >= np.quantile(level, LOUD)) & (level >= level.max() - SPAN)
    rows = rows[loud]
    shape = rows - rows.mean(1, keepdims=True)
    out: Float32 = np.concatenate([shape.mean(0), shape.std(0)]).astype(np.float32)
    above = 10 * np.log10(speech[loud].sum(1).mean() / (noise.sum() + 1e-9))
    return out, float(above)


def voiceprint(mels: Float32) -> Float32:
    """The voiceprint alone (see `listen`)."""
    return listen(mels)[0]


def unit_rows(x: Float32) -> Float32:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    out: Float32 = (x / np.maximum(norm, 1e-6)).astype(np.float32)
    return out


@dataclass(frozen=True)
class VoiceVerifier:
    """One enrolled voice: its name, its templates (k x WINDOW x 96, unit rows) and their
    voiceprints (k x 64; None for a voice enrolled before prints existed)."""

    name: str
    templates: Float32
    prints: Float32 | None = None

    def similarity(self, embeddings: Float32) -> float:
        """Best match of the newest WINDOW embeddings against the templates (-1..1)."""
        w = unit_rows(embeddings[-WINDOW:])
        sims = np.einsum("ktd,td->k", self.templates, w) / WINDOW
        return float(sims.max())

    def print_distance(self, mels: Float32) -> float:
        """Distance of the newest rows' voiceprint to the nearest of this voice's (0 without
        prints: such a voice cannot be told apart from others by its sound)."""
        if self.prints is None:
            return 0.0
        heard, above = listen(mels)
        if above < QUIET_DB:
            return 0.0
        return float(np.linalg.norm(self.prints - heard, axis=1).min())

    def save(self, directory: Path) -> Path:
        """Write `directory/NAME.npz` (0600) atomically; returns the path."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{self.name}.npz"
        buf = io.BytesIO()
        templates = self.templates.astype(np.float16)
        if self.prints is None:  # a voice read from a file written before prints
            np.savez(buf, format=np.array(1), templates=templates)
        else:
            prints = self.prints.astype(np.float32)
            np.savez(buf, format=np.array(FORMAT), templates=templates, prints=prints)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> VoiceVerifier:
        """Read a saved voice (ValueError when the file is not one)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                fmt = int(z["format"])
                templates = z["templates"].astype(np.float32)
                prints = z["prints"].astype(np.float32) if "prints" in z.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a livespeaker voice file ({exc})") from None
        if fmt not in (1, FORMAT) or templates.ndim != 3 or templates.shape[1:] != (WINDOW, 96):
            raise ValueError(f"{path}: unsupported voice file (format {fmt}, {templates.shape})")
        if fmt == FORMAT and (prints is None or prints.shape != (len(templates), 64)):
            raise ValueError(f"{path}: damaged voice file (prints do not match the templates)")
        return cls(path.stem, unit_rows(templates), prints)


def check_name(name: str) -> str:
    """A voice name: lower-case letters, digits, '-' and '_', 1-32 characters."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"voice name {name!r}: use 1-32 lower-case letters, digits, '-' or '_' "
            "(starting with a letter or digit)"
        )
    return name


def voices_dir(state_dir: Path) -> Path:
    """Where enrolled voices live."""
    return state_dir / "voices"


def consulted(score: float) -> bool:
    """Whether a frame the base model scored `score` is compared with the enrolled voices."""
    return score >= FAINT_GATE


def required_match(score: float) -> float:
    """The similarity a frame the base model scored `score` needs (inf: not compared at all)."""
    if score >= GATE:
        return MATCH
    return FAINT_MATCH if score >= FAINT_GATE else float("inf")


def best_match(
    verifiers: Sequence[VoiceVerifier],
    embeddings: Float32,
    score: float,
    mels: Float32 | None = None,
) -> tuple[str, float] | None:
    """The enrolled voice that matches the newest window best, if any matches (name,
    similarity) as closely as a frame the base model scored `score` needs; with `mels` (the newest
    mel rows) its voiceprint must match too."""
    need = required_match(score)
    best: tuple[str, float] | None = None
    for v in verifiers:
        s = v.similarity(embeddings)
        if s < need or (best is not None and s <= best[1]):
            continue
        if mels is not None and v.print_distance(mels) > PRINT_MATCH:
            continue
        best = (v.name, s)
    return best
