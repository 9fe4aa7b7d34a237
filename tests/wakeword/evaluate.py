"""Score corpus streams: the bare engine and the daemon's wake path, from the same features.

`analyse(stream)` runs the daemon's own `WakeModel` (openWakeWord's features + the hey_jarvis
classifier) over the stream once and caches, per 80 ms frame, the base score and the newest speech
embedding. `WakeModel` scores equal openWakeWord's `Model.predict` (tests/wakeword/test_models.py),
so the bare engine is "frame score >= 0.5"; the daemon path is the daemon's `FrameTrigger` (threshold,
trigger frames, refractory time, the second stage, enrolled voices) fed the same frames
(`test_detector.py` checks it decides exactly as `Detector.process` on the audio).
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import re
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import WakeAudience, WakewordConfig
from device.events import MIC_RATE, AudioBlock, WakeDetected
from device.wakeword.detector import Detector, FrameTrigger
from device.wakeword.features import FRAME_SAMPLES, HISTORY, MEL_HISTORY
from device.wakeword.micro import MicroModel, MicroSpec, micro_spec_for
from device.wakeword.models import WakeModel, resolve_model
from device.wakeword.second_stage import SecondStage, second_stage_for
from device.wakeword.verifier import VoiceVerifier
from tests.wakeword.corpus import (
    ROOT,
    VERSION,
    WAKE,
    Spec,
    Stream,
    Voice,
    frames_of,
    say,
    speaker,
    voice_of,
)

AFTER = MIC_RATE
"""A detection up to 1 s after a clip's end still counts for it."""


@dataclass(frozen=True)
class Analysis:
    """Per 80 ms frame of a stream: the base score, the newest embedding and the frame's mel
    rows."""

    scores: npt.NDArray[np.float32]
    embeddings: npt.NDArray[np.float16]
    mels: npt.NDArray[np.float16]
    """n x ROWS x 32: the mel rows each frame added (what voiceprints read)."""
    micro: npt.NDArray[np.float32]
    """The microWakeWord model's score of each frame (`MicroModel.score`)."""


ROWS = 8
"""Mel rows per 80 ms frame."""


def _save(path: Path, **arrays: npt.NDArray[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


@functools.cache
def _micro(enabled: bool) -> MicroSpec | None:
    """hey_jarvis's microWakeWord model as the Detector would use it (read once per process)."""
    return micro_spec_for(resolve_model("hey_jarvis"), WakewordConfig(micro_wake_word=enabled))


@functools.cache
def _micro_file_digest() -> str:
    spec = _micro(True)
    assert spec is not None
    return hashlib.sha256(spec.path.read_bytes()).hexdigest()[:8]


def micro_scores(stream: Stream, digest: str) -> npt.NDArray[np.float32]:
    """The hey_jarvis microWakeWord model's score per 80 ms frame (cached apart from the rest,
    which it came after, and by the model file's hash too)."""
    path = ROOT / "analysis" / f"{VERSION}-u{_micro_file_digest()}-{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return np.asarray(z["micro"], np.float32)
    spec = _micro(True)
    assert spec is not None
    model = MicroModel(spec)
    micro = np.array([model.score(f) for f in frames_of(stream)], np.float32)
    _save(path, micro=micro)
    return micro


def analyse(stream: Stream) -> Analysis:
    """Features and base scores of a stream (cached by a hash of its audio)."""
    digest = hashlib.sha256(stream.audio.tobytes()).hexdigest()[:24]
    path = ROOT / "analysis" / f"{VERSION}-m-{digest}.npz"
    micro = micro_scores(stream, digest)
    if path.exists():
        with np.load(path) as z:
            return Analysis(z["scores"], z["embeddings"], z["mels"], micro)
    model = WakeModel(resolve_model("hey_jarvis"))
    scores: list[float] = []
    embs: list[npt.NDArray[np.float32]] = []
    mels: list[npt.NDArray[np.float32]] = []
    for frame in frames_of(stream):
        scores.append(model.score(frame))
        embs.append(model.embeddings[-1].copy())
        mels.append(model.mels[-ROWS:].copy())
    a = Analysis(
        np.array(scores, np.float32),
        np.array(embs, np.float16),
        np.array(mels, np.float16),
        micro,
    )
    _save(path, scores=a.scores, embeddings=a.embeddings, mels=a.mels)
    return a


def analyse_all(streams: Sequence[Stream], workers: int = 2) -> list[Analysis]:
    """`analyse` for many streams in worker processes (the machine has 2 cores)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(analyse, streams))


@dataclass
class Result:
    """Detections per clip and outside any clip, and the enrolled voice each first hit matched."""

    hits: list[int]
    outside: int
    voices: list[str | None]
    hours: float
    end_errors_ms: list[float]
    """First detection's wake-word end estimate minus the true end, per detected positive."""

    def recall(self) -> float:
        return float(np.mean([h > 0 for h in self.hits])) if self.hits else 0.0

    @property
    def total(self) -> int:
        return sum(self.hits) + self.outside


def _clip_index(stream: Stream, sample: int, starts: npt.NDArray[np.int64]) -> int | None:
    i = int(np.searchsorted(starts, sample, side="right")) - 1
    if i >= 0 and sample < stream.clips[i].end + AFTER:
        return i
    return None


def _result(stream: Stream, detections: Sequence[tuple[int, str | None, int | None]]) -> Result:
    """Detections as (sample where made, enrolled voice, estimated wake-word end) per clip."""
    starts = np.array([c.start for c in stream.clips], np.int64)
    hits = [0] * len(stream.clips)
    voices: list[str | None] = [None] * len(stream.clips)
    errors: list[float] = []
    outside = 0
    for at, voice, est in detections:
        i = _clip_index(stream, at, starts)
        if i is None:
            outside += 1
            continue
        true_end = stream.clips[i].wake_end
        if hits[i] == 0:
            voices[i] = voice
            if est is not None and true_end is not None:
                errors.append((est - true_end) * 1000 / MIC_RATE)
        hits[i] += 1
    return Result(hits, outside, voices, stream.hours, errors)


def accepted(stream: Stream, frames: npt.NDArray[np.bool_], refractory_s: float = 2.0) -> Result:
    """Every accepted frame is a detection, except within `refractory_s` of the last one."""
    dets: list[tuple[int, str | None, int | None]] = []
    blocked = -1
    for k in np.flatnonzero(frames):
        end = (int(k) + 1) * FRAME_SAMPLES
        if end >= blocked:
            blocked = end + int(refractory_s * MIC_RATE)
            dets.append((end, None, None))
    return _result(stream, dets)


def bare(stream: Stream, a: Analysis, threshold: float = 0.5, refractory_s: float = 2.0) -> Result:
    """openWakeWord as its README uses it: a frame scoring >= threshold is a detection."""
    return accepted(stream, a.scores >= threshold, refractory_s)


def mel_history(a: Analysis, k: int, out: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The detector's mel history (MEL_HISTORY rows) after frame `k`, into `out`."""
    lo = max(0, k + 1 - MEL_HISTORY // ROWS)
    out[:] = 1.0  # as the detector's history starts
    rows = a.mels[lo : k + 1].reshape(-1, out.shape[1])
    out[MEL_HISTORY - len(rows) :] = rows
    return out


@functools.cache
def _second_stage(enabled: bool, noise_suppression: bool) -> SecondStage | None:
    cfg = WakewordConfig(second_stage=enabled, noise_suppression=noise_suppression)
    return second_stage_for(resolve_model("hey_jarvis"), cfg)


def daemon_detections(
    a: Analysis,
    cfg: WakewordConfig | None = None,
    voices: Sequence[VoiceVerifier] = (),
    *,
    stage: SecondStage | None = None,
    micro: MicroSpec | None = None,
) -> list[tuple[int, str | None, int | None]]:
    """The daemon's FrameTrigger on the same frames (no noise suppression: the default), with the
    second stage (or `stage`: another operating point of it) and the microWakeWord model (or
    `micro`: another cutoff of it) the Detector would use: where each detection fired (the sample
    ending its frame), the enrolled voice it matched and its wake-word end estimate."""
    cfg = cfg or WakewordConfig()
    if stage is None:
        stage = _second_stage(cfg.second_stage, cfg.noise_suppression)
    if micro is None:
        micro = _micro(cfg.micro_wake_word)
    trigger = FrameTrigger(cfg, "hey_jarvis", voices, second_stage=stage)
    window = np.zeros((HISTORY, a.embeddings.shape[1]), np.float32)
    mels = np.ones((MEL_HISTORY, a.mels.shape[2]), np.float32)
    dets: list[tuple[int, str | None, int | None]] = []
    n = len(a.scores)
    for k in range(n):
        score = float(a.scores[k])
        heard = micro is not None and micro.hears(float(a.micro[k]))
        if trigger.needs_embeddings(score, heard):
            lo = max(0, k + 1 - HISTORY)
            window[HISTORY - (k + 1 - lo) :] = a.embeddings[lo : k + 1]
        if trigger.needs_mels(score, heard):
            mel_history(a, k, mels)
        hit = trigger.update(score, (k + 1) * FRAME_SAMPLES, None, window, mels, heard=heard)
        if hit is not None:
            dets.append(((k + 1) * FRAME_SAMPLES, hit.voice, hit.end))
    return dets


def daemon(
    stream: Stream,
    a: Analysis,
    cfg: WakewordConfig | None = None,
    voices: Sequence[VoiceVerifier] = (),
    *,
    stage: SecondStage | None = None,
    micro: MicroSpec | None = None,
) -> Result:
    """`daemon_detections` per clip of the stream."""
    return _result(stream, daemon_detections(a, cfg, voices, stage=stage, micro=micro))


def online(stream: Stream, det: Detector, block: int = 1280) -> tuple[Result, list[WakeDetected]]:
    """Detector.process on the stream's audio in `block`-sample AudioBlocks, as the microphone
    hands them over: the result (each detection where it fired) and the detections."""
    hits: list[WakeDetected] = []
    for i in range(0, len(stream.audio), block):
        hits += det.process(AudioBlock(stream.audio[i : i + block].tobytes(), i))
    found = [(h.fired_at, h.voice, h.end) for h in hits if h.fired_at is not None]
    return _result(stream, found), hits


def build_and_analyse(spec: Spec) -> tuple[Stream, Analysis]:
    """One evaluation stream and its features (for worker processes)."""
    stream = spec.build()
    return stream, analyse(stream)


def run_specs(specs: Sequence[Spec], workers: int = 2) -> list[tuple[Stream, Analysis]]:
    """`build_and_analyse` for every spec, in worker processes (the machine has 2 cores)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(build_and_analyse, specs))


ENROLL_TAKES = ((0.95, -1), (1.05, 1), (0.9, 1), (1.1, -1))
"""Enrollment takes: the wake word alone at tempos and pitches the test renditions never use."""


def enroll_voice(voice: Voice) -> VoiceVerifier:
    """A verifier from four takes of `voice` saying the wake word alone."""
    from device.wakeword.enroll import enroll
    from device.wakeword.models import load_model

    takes = [say(voice, WAKE, t, s) for t, s in ENROLL_TAKES]
    return enroll(
        re.sub(r"[^a-z0-9_-]", "-", str(voice).lower())[:32], takes, load_model("hey_jarvis")
    )


@dataclass
class Row:
    """One line of the report: a condition, bare vs daemon (recall, or false accepts per hour)."""

    kind: str
    condition: str
    bare: float
    daemon: float
    n: int
    """Clips (positives) or minutes (negatives)."""


def recall_of(stream: Stream, r: Result, voices: Collection[Voice]) -> tuple[float, int]:
    """Recall over the clips of `voices` only, and how many clips that is."""
    hit = [h > 0 for h, c in zip(r.hits, stream.clips, strict=True) if voice_of(c.label) in voices]
    return (float(np.mean(hit)) if hit else 0.0), len(hit)


def compare(
    results: Sequence[tuple[Spec, Stream, Analysis]],
    cfg: WakewordConfig | None = None,
    voices: Collection[Voice] | None = None,
) -> list[Row]:
    """Bare engine vs the daemon path (no enrolled voice) per stream (`voices`: recall over their
    wake words only; negatives as they are)."""
    rows: list[Row] = []
    for spec, stream, a in results:
        b, d = bare(stream, a), daemon(stream, a, cfg)
        if spec.kind == "pos" and voices is not None:
            (rb, n), (rd, _) = recall_of(stream, b, voices), recall_of(stream, d, voices)
            rows.append(Row("pos", spec.condition, rb, rd, n))
        elif spec.kind == "pos":
            rows.append(Row("pos", spec.condition, b.recall(), d.recall(), len(stream.clips)))
        else:
            label = spec.condition if spec.kind == "speech" else f"{spec.kind} ({spec.condition})"
            h = stream.hours
            kind = "near" if spec.kind == "near" else "neg"
            rows.append(Row(kind, label, b.total / h, d.total / h, round(h * 60)))
    return rows


@dataclass
class Enrolled:
    """One enrolled voice's results: recall of its own renditions per condition, false accepts
    per hour over every negative (its own ordinary speech among them), and in enrolled-only mode
    the share of other speakers' wake words accepted (`corpus.speaker`: other voices of the same
    speaker apart)."""

    voice: str
    recall: dict[str, float]
    without: dict[str, float]
    """The same renditions' recall with nobody enrolled."""
    false_accepts: int
    hours: float
    """Ordinary negatives (speech in every condition, music, replies); near misses apart."""
    near_accepts: int
    near_clips: int
    others_accepted: float
    """Enrolled-only mode: the share of other speakers' wake words accepted."""
    same_speaker_accepted: float | None
    """The same for other voices of the enrolled voice's speaker (None: it has none here)."""
    only: dict[str, float]
    """Enrolled-only mode: the voice's own renditions recalled, per condition."""


def enrolled(
    voice: Voice, results: Sequence[tuple[Spec, Stream, Analysis]], cfg: WakewordConfig
) -> Enrolled:
    """Enroll `voice` and score every stream with it."""
    verifier = enroll_voice(voice)
    only = cfg.model_copy(update={"who_can_wake": WakeAudience.ENROLLED})
    recall: dict[str, float] = {}
    without: dict[str, float] = {}
    only_recall: dict[str, float] = {}
    fa, hours, others, n_others, near, n_near = 0, 0.0, 0, 0, 0, 0
    same, n_same = 0, 0
    who = speaker(voice)
    for spec, stream, a in results:
        if spec.kind == "near":
            near += sum(h > 0 for h in daemon(stream, a, cfg, [verifier]).hits)
            n_near += len(stream.clips)
            continue
        if spec.kind != "pos":
            fa += daemon(stream, a, cfg, [verifier]).total
            hours += stream.hours
            continue
        mine = [c.label.startswith(f"{voice} ") for c in stream.clips]
        r0 = daemon(stream, a, cfg)
        without[spec.condition] = float(
            np.mean([h > 0 for h, m in zip(r0.hits, mine, strict=True) if m])
        )
        r = daemon(stream, a, cfg, [verifier])
        recall[spec.condition] = float(
            np.mean([h > 0 for h, m in zip(r.hits, mine, strict=True) if m])
        )
        ro = daemon(stream, a, only, [verifier])
        for h, m, c in zip(ro.hits, mine, stream.clips, strict=True):
            if m:
                continue
            if speaker(voice_of(c.label)) == who:
                same, n_same = same + (h > 0), n_same + 1
            else:
                others, n_others = others + (h > 0), n_others + 1
        only_recall[spec.condition] = float(
            np.mean([h > 0 for h, m in zip(ro.hits, mine, strict=True) if m])
        )
    return Enrolled(
        str(voice),
        recall,
        without,
        fa,
        hours,
        near,
        n_near,
        others / max(n_others, 1),
        same / n_same if n_same else None,
        only_recall,
    )
