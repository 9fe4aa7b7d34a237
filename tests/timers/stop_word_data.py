"""Training and evaluation data for the "stop" word (device/timers/stopword.py), from the wake-word
corpus's synthesizer voices (tests/wakeword/corpus.py): tuning voices train, held-out voices report.

Positives: "stop" by each voice at every tempo x pitch, clean and with the ring playing under it
(the microphone hears the speaker). Negatives: ordinary speech (fortune texts), clean and with the
ring under it, and the ring alone. A window counts as positive when it ends 1-3 frames after the
word; windows around the word that are not positive are left out of training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import soxr

from device.audio import earcons
from device.events import MIC_RATE, MODEL_RATE
from device.timers.stopword import WINDOW
from tests.wakeword import corpus
from tests.wakeword.evaluate import analyse

Float32 = npt.NDArray[np.float32]
POSITIVE_OFFSETS = (1, 2, 3)
RING_DBFS = -26.0
"""The ring as loud as the speech less 6 dB (speech clips are at -20 dBFS active level)."""


def ring_16k(n: int) -> npt.NDArray[np.int16]:
    """The ring as the microphone would hear it (no room), n samples at 16 kHz."""
    one = soxr.resample(
        earcons.render(earcons.Earcon.RING).astype(np.float32), MODEL_RATE, MIC_RATE
    )
    x = np.tile(one, n // len(one) + 1)[:n]
    rms = float(np.sqrt(np.mean(x[np.abs(x) > 50] ** 2)))
    return np.asarray(x / rms * 32768 * 10 ** (RING_DBFS / 20), np.int16)


def with_ring(stream: corpus.Stream) -> corpus.Stream:
    """The stream with the ring under it all along."""
    mixed = np.clip(stream.audio.astype(np.int32) + ring_16k(len(stream.audio)), -32768, 32767)
    return corpus.Stream(stream.name + " + ring", mixed.astype(np.int16), stream.clips)


def stops(voices: Sequence[corpus.Voice]) -> corpus.Stream:
    """ "stop" by every voice at every tempo and pitch, 1.5 s apart."""
    parts: list[tuple[str, npt.NDArray[np.int16], int | None]] = [
        (f"{v} t{t} p{s:+d}", corpus.say(v, "stop", t, s), None)
        for v in voices
        for t in corpus.TEMPOS
        for s in corpus.SEMITONES
    ]
    return corpus.lay_out(f"stop {len(voices)} voices", parts, gap_s=1.5)


def ring_alone(minutes: float) -> corpus.Stream:
    """The ring and nothing else."""
    n = int(minutes * 60 * MIC_RATE)
    return corpus.Stream(f"ring {minutes} min", ring_16k(n), (corpus.Clip("ring", 0, None, n),))


def windows(stream: corpus.Stream) -> Float32:
    """Every WINDOW-frame embedding window of a stream (row j ends at frame j + WINDOW - 1)."""
    e = analyse(stream).embeddings.astype(np.float32)
    idx = np.arange(WINDOW)[None, :] + np.arange(len(e) - WINDOW + 1)[:, None]
    out: Float32 = e[idx].reshape(len(idx), -1)
    return out


def labelled(stream: corpus.Stream) -> tuple[Float32, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Windows, which are positives, and which are near a word (neither clearly one nor other)."""
    x = windows(stream)
    pos = np.zeros(len(x), bool)
    near = np.zeros(len(x), bool)
    for c in stream.clips:
        k_end = c.end // 1280
        for o in POSITIVE_OFFSETS:
            if 0 <= (j := k_end + o - WINDOW + 1) < len(x):
                pos[j] = True
        near[max(0, c.start // 1280 - WINDOW) : k_end + 12] = True
    return x, pos, near & ~pos


def per_word_best(stream: corpus.Stream, scores: Float32) -> Float32:
    """The best score around each word of a positive stream."""
    return np.array(
        [scores[max(0, c.start // 1280 - WINDOW) : c.end // 1280 + 8].max() for c in stream.clips],
        np.float32,
    )


def detections(scores: Float32, threshold: float, refractory_frames: int = 25) -> int:
    """How many separate detections a score sequence gives (2 s refractory)."""
    n, last = 0, -(10**9)
    for h in np.flatnonzero(scores >= threshold):
        if h - last > refractory_frames:
            n += 1
            last = h
    return n
