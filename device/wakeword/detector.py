"""The wake-word detector: AudioBlocks in, 80 ms frames scored off the event loop, WakeDetected out.

Three layers, each testable on its own:
- `FrameTrigger`: pure decision logic on a score sequence (threshold, microWakeWord's model, the
  second stage and enrolled voices on the frame's embeddings, frames above threshold, refractory
  time, a higher threshold during playback) and the estimate of where the wake word ended.
- `Detector.process(block)`: synchronous framing + front end + model + FrameTrigger (the evaluation runs
  exactly this).
- `Detector.run(source, on_detect)`: the daemon path; a dedicated thread does the scoring, fed by a
  bounded drop-oldest queue (`feed(block)`, from the loop: the microphone hands each block straight
  to it, the one buffer on the wake path), so a slow frame never holds up the event loop or audio
  delivery. With a `source` (an async block queue), run() feeds it itself.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.config import ConfigError, WakeAudience, WakewordConfig
from device.events import MIC_RATE, AudioBlock, StopWordHeard, WakeDetected
from device.timers.stopword import THRESHOLD as STOP_THRESHOLD
from device.timers.stopword import StopWord
from device.wakeword.features import FRAME_SAMPLES
from device.wakeword.micro import MicroModel, micro_model_for
from device.wakeword.models import WakeModel, load_model
from device.wakeword.second_stage import SecondStage, second_stage_for
from device.wakeword.verifier import GATE, VoiceVerifier, best_match, consulted, voices_dir

log = logging.getLogger(__name__)
Float32 = npt.NDArray[np.float32]

END_LEAD_S = 0.65
NOISY_END_LEAD_S = 0.65
"""The wake word's end is estimated this long before the end of the first frame that was accepted
(the noisy value applies with noise suppression in steady noise). Chosen on the broad evaluation's
tuning voices (tests/wakeword/corpus.py), with the second stage: at 0.55 s the estimate minus the
true end was -914..+128 ms (99th percentile -28 ms) over every condition, i.e. up to 0.13 s of the
question would be left out of the pre-roll (the second stage accepts some wake words a frame or two
later than the base model would); 0.65 s shifts that to -1014..+28 ms. The estimate errs early
(some of "...jarvis" is sent, which the server ignores) rather than clipping the question.
Re-checked with microWakeWord's model (Dec 7 2026): -1014..-14 ms on the tuning voices, the same
as without it."""
QUIET_LEVEL = 6.0
NOISY_LEVEL = 7.5
"""Background noise levels (the noise suppressor's estimate, log-mel units: 1 = 10 dB, digital
silence = 3.96) between which the threshold slides from `threshold` down to `noisy_threshold`.
6.0 is about -54 dBFS of white noise (a quiet room through a real microphone), 7.5 about -39 dBFS;
the evaluation's 10 dB SNR noise is at 8.6. Past half way, `noisy_trigger_frames` consecutive frames
are needed: in noise a lone frame above the low threshold is what false accepts look like (on the
evaluation's noisy negatives the best 2-frame run peaks at 0.014, single frames at 0.062), while the
wake word holds its score for several frames."""
STOP_REFRACTORY_S = 2.0
"""No second "stop" for this long after one."""
QUEUE_BLOCKS = 200
"""Blocks buffered between the event loop and the scoring thread (4 s of 20 ms blocks)."""


class Accepted(Enum):
    """What made a frame count where it counts."""

    BASE = "base"
    """The base model at its threshold, or an enrolled voice's templates."""
    MICRO = "micro"
    """The microWakeWord model, where the base model scored below its threshold (with an enrolled
    voice: the templates were compared because it heard the wake word)."""
    SECOND_STAGE = "second_stage"
    """The second stage, where the base model scored below its threshold."""


class BlockSource(Protocol):
    """Anything with `async get() -> AudioBlock` (e.g. a Microphone consumer queue)."""

    async def get(self) -> AudioBlock: ...


def _noisiness(noise_level: float | None) -> float:
    """0 in quiet (or without noise suppression) .. 1 in loud steady noise."""
    if noise_level is None:
        return 0.0
    return min(max((noise_level - QUIET_LEVEL) / (NOISY_LEVEL - QUIET_LEVEL), 0.0), 1.0)


class FrameTrigger:
    """Turns 80 ms frame scores into detections."""

    def __init__(
        self,
        cfg: WakewordConfig,
        model_name: str,
        voices: Sequence[VoiceVerifier] = (),
        *,
        end_lead_s: float = END_LEAD_S,
        noisy_end_lead_s: float = NOISY_END_LEAD_S,
        second_stage: SecondStage | None = None,
    ) -> None:
        self._cfg = cfg
        self._name = model_name
        self._voices = tuple(voices)
        self._stage = second_stage
        self._enrolled_only = cfg.who_can_wake is WakeAudience.ENROLLED
        self._run_voice: str | None = None
        self._leads = (end_lead_s, noisy_end_lead_s)
        self._lead = 0
        self._need = cfg.trigger_frames
        self._refractory = int(cfg.refractory_s * MIC_RATE)
        self.barge_in = False
        self._run = 0
        self._run_peak = 0.0
        self._first_end = 0
        self._blocked_until = -1

    @property
    def threshold(self) -> float:
        """The threshold in force (the barge-in one while the speaker plays)."""
        return self.threshold_at(None)

    def threshold_at(self, noise_level: float | None) -> float:
        """The threshold for a background noise level (None: noise suppression is off)."""
        if self.barge_in:
            return self._cfg.barge_in_threshold
        quiet, noisy = self._cfg.threshold, self._cfg.noisy_threshold
        if noisy >= quiet:
            return quiet
        return quiet + _noisiness(noise_level) * (noisy - quiet)

    def frames_needed(self, noise_level: float | None) -> int:
        """Frames above threshold needed: `noisy_trigger_frames` once the noise is past half way."""
        if self.barge_in or _noisiness(noise_level) < 0.5:
            return self._cfg.trigger_frames
        return max(self._cfg.trigger_frames, self._cfg.noisy_trigger_frames)

    @property
    def voices(self) -> tuple[VoiceVerifier, ...]:
        """The enrolled voices this trigger accepts."""
        return self._voices

    @property
    def second_stage(self) -> SecondStage | None:
        """The base model's trained second stage, if it has one and it is enabled."""
        return self._stage

    def needs_embeddings(self, score: float, heard: bool = False) -> bool:
        """Whether `update` will read this frame's embeddings (the second stage or the enrolled
        voices look at it); `heard`: the microWakeWord model heard the wake word in it."""
        return (bool(self._voices) and (heard or consulted(score))) or (
            self._stage is not None and score >= self._stage.gate
        )

    def needs_mels(self, score: float, heard: bool = False) -> bool:
        """Whether `update` will read the newest mel rows (enrolled-only: the voiceprints)."""
        return self._enrolled_only and bool(self._voices) and (heard or consulted(score))

    def _accepts(
        self,
        score: float,
        noise_level: float | None,
        embeddings: Float32 | None,
        mels: Float32 | None,
        heard: bool,
    ) -> tuple[bool, str | None, Accepted | None]:
        """Does this frame count towards a detection, which enrolled voice matched, and what
        made it count (None: it does not)."""
        match = None
        if embeddings is not None and self._voices and (heard or consulted(score)):
            # Enrolled-only: the window must also sound like the voice (its voiceprint).
            prints = mels if self._enrolled_only else None
            if self._enrolled_only and mels is None:
                raise ValueError("enrolled-only mode needs the mel rows (needs_mels)")
            # The microWakeWord model's detection counts as a sure one of the base model's.
            match = best_match(
                self._voices, embeddings, max(score, GATE) if heard else score, prints
            )
        voice = None if match is None else match[0]
        if self._enrolled_only and voice is None:
            return False, None, None
        if self.barge_in:  # the speaker plays: only a clear wake word interrupts it
            clear = score >= self._cfg.barge_in_threshold
            return clear, voice, Accepted.BASE if clear else None
        if score >= self.threshold_at(noise_level):
            return True, voice, Accepted.BASE
        if heard:
            return True, voice, Accepted.MICRO
        if voice is not None:
            return True, voice, Accepted.BASE
        stage = self._stage
        if stage is not None and embeddings is not None and stage.accepts(embeddings, score):
            return True, None, Accepted.SECOND_STAGE
        return False, None, None

    def update(
        self,
        score: float,
        frame_end: int,
        noise_level: float | None = None,
        embeddings: Float32 | None = None,
        mels: Float32 | None = None,
        *,
        heard: bool = False,
    ) -> WakeDetected | None:
        """Feed the score (and the newest embeddings and mel rows, when `needs_embeddings` and
        `needs_mels` ask for them) of the frame ending at sample `frame_end`; `heard`: the
        microWakeWord model heard the wake word in this frame."""
        accepted, voice, by = self._accepts(score, noise_level, embeddings, mels, heard)
        if not accepted or frame_end < self._blocked_until:
            self._run = 0
            return None
        if self._run == 0:
            self._run_voice = None
            self._first_end = frame_end
            self._run_peak = 0.0
            quiet, noisy = self._leads
            self._lead = int((quiet + _noisiness(noise_level) * (noisy - quiet)) * MIC_RATE)
            self._need = self.frames_needed(noise_level)
        self._run += 1
        self._run_peak = max(self._run_peak, score)
        self._run_voice = self._run_voice or voice
        if self._run < self._need:
            return None
        self._run = 0
        self._blocked_until = frame_end + self._refractory
        end = max(0, self._first_end - self._lead)
        return WakeDetected(
            self._name,
            self._run_peak,
            end,
            self._run_voice,
            frame_end,
            second_stage=by is Accepted.SECOND_STAGE and self._run_voice is None,
            micro=by is Accepted.MICRO,
        )

    def reset(self) -> None:
        """Forget a partial run and any refractory period."""
        self._run = 0
        self._blocked_until = -1

    def twin(self) -> FrameTrigger:
        """A trigger with the same settings, voices and second stage, for another stream."""
        return FrameTrigger(
            self._cfg,
            self._name,
            self._voices,
            end_lead_s=self._leads[0],
            noisy_end_lead_s=self._leads[1],
            second_stage=self._stage,
        )

    def follow(self, other: FrameTrigger) -> None:
        """Start afresh (no partial run) under `other`'s refractory period and mode."""
        self._run = 0
        self._blocked_until = other.blocked_until
        self.barge_in = other.barge_in

    def block_until(self, tick: int) -> None:
        """No detection from frames that end before `tick` (another stream's refractory)."""
        self._blocked_until = max(self._blocked_until, tick)

    @property
    def blocked_until(self) -> int:
        """The first frame end that may be detected again."""
        return self._blocked_until


@dataclass(frozen=True, slots=True)
class FrameScore:
    """One 80 ms frame's scores: the base model's, microWakeWord's (None: not running) and the
    sample where the frame ends."""

    base: float
    micro: float | None
    end: int


class _Lane:
    """One stream of audio into a model and a trigger: the 80 ms frame being filled."""

    def __init__(
        self, model: WakeModel, trigger: FrameTrigger, micro: MicroModel | None = None
    ) -> None:
        self.model = model
        self.trigger = trigger
        self.micro = micro
        """The microWakeWord model on this stream (the first lane only: it keeps state, and
        while the speaker plays only the base model's barge-in threshold counts)."""
        self.buf = np.zeros(FRAME_SAMPLES, np.int16)
        self.fill = 0
        self.next = -1
        self.frames = 0

    def follow(self, other: _Lane) -> None:
        """Pick up where `other` is: its audio history, its frame in progress, its refractory."""
        self.model.follow(other.model)
        self.trigger.follow(other.trigger)
        self.buf[:] = other.buf
        self.fill = other.fill
        self.next = other.next


class Detector:
    """Scores microphone audio with the configured wake-word model (and microWakeWord's for the
    same wake word) and reports detections.

    With echo cancellation (`AudioBlock.uncancelled` set) it listens on two lanes while the
    speaker plays (`set_barge_in(True)`): the cancelled signal and the microphone as captured.
    Either one detects, with one refractory period; "stop" over a ring too. The canceller's
    suppressor thins the user's voice while the answer's echo is loud, the echo masks it in
    the captured signal, and each misses takes the other finds (bench_aec, "Hey Jarvis, stop"
    over 20 answers on the rig: the cancelled signal alone 13, the captured one alone 10, either
    17; half duplex 15). The second lane shares the interpreters (its own 50 KB of history),
    runs only while the speaker plays, and starts from the first lane's history."""

    def __init__(
        self,
        cfg: WakewordConfig,
        model: WakeModel | None = None,
        voices: Sequence[VoiceVerifier] = (),
        stop_word: StopWord | None = None,
        second_stage: SecondStage | None = None,
        *,
        micro: MicroModel | None = None,
    ) -> None:
        if model is None:  # the configured model, its second stage and microWakeWord model
            model = load_model(cfg.model, denoise=cfg.noise_suppression)
            second_stage = second_stage or second_stage_for(model.spec, cfg)
            micro = micro or _micro_model(model, cfg)
        self.model = model
        self.stop_word = stop_word
        """The "stop" keyword model, scored only while `set_stop_word(True)` (a timer rings)."""
        self._stop_on = False
        self._stop_blocked = -1
        self.stops: list[StopWordHeard] = []
        """"stop"s heard by process() and not yet handed over (run() takes them)."""
        self.trigger = FrameTrigger(cfg, self.model.name, voices, second_stage=second_stage)
        self._main = _Lane(self.model, self.trigger, micro)
        self._uncancelled: _Lane | None = None
        """The second lane (made on first use), on the microphone as captured."""
        self._uncancelled_on = False
        self.gaps = 0
        self.dropped = 0
        self.on_score: Callable[[FrameScore], None] | None = None
        """Told each of the first lane's frames' scores (the scoring thread: hand over only)."""
        self._inbox: queue.Queue[AudioBlock | None] = queue.Queue(QUEUE_BLOCKS)

    @property
    def frames(self) -> int:
        """80 ms frames scored on the microphone's signal (the first lane)."""
        return self._main.frames

    @property
    def uncancelled_frames(self) -> int:
        """Frames scored on the uncancelled signal while the speaker played (the second lane)."""
        return 0 if self._uncancelled is None else self._uncancelled.frames

    def reset(self) -> None:
        """Forget all audio heard (a new, unrelated stream follows)."""
        self.model.reset()
        if self._main.micro is not None:
            self._main.micro.reset()
        self.trigger.reset()
        self._main.fill = 0
        self._main.next = -1
        self._uncancelled_on = False

    def set_barge_in(self, playing: bool) -> None:
        """Use the barge-in threshold while the speaker plays (thread-safe: a plain flag)."""
        self.trigger.barge_in = playing

    def set_stop_word(self, on: bool) -> None:
        """Listen for "stop" (while a timer rings); thread-safe: a plain flag."""
        self._stop_on = on

    def process(self, block: AudioBlock) -> list[WakeDetected]:
        """Frame, clean and score a block; returns the detections it completed."""
        found: list[WakeDetected] = []
        if block.uncancelled is not None and self.trigger.barge_in:
            lane = self._uncancelled
            if lane is None:
                lane = self._uncancelled = _Lane(self.model.twin(), self.trigger.twin())
            if not self._uncancelled_on:
                lane.follow(self._main)  # before the first lane takes this block
                self._uncancelled_on = True
            found += self._lane(lane, block.uncancelled, block.start)
        else:
            self._uncancelled_on = False
        found += self._lane(self._main, block.pcm, block.start)
        return found

    def _lane(self, lane: _Lane, pcm: bytes, start: int) -> list[WakeDetected]:
        main = lane is self._main
        if start != lane.next and lane.next >= 0:
            lane.fill = 0  # lost blocks upstream: start a fresh frame at this block
            if main:
                self.gaps += 1
        samples: npt.NDArray[np.int16] = np.frombuffer(pcm, np.int16)
        lane.next = start + len(samples)
        found: list[WakeDetected] = []
        pos = 0
        while pos < len(samples):
            n = min(FRAME_SAMPLES - lane.fill, len(samples) - pos)
            lane.buf[lane.fill : lane.fill + n] = samples[pos : pos + n]
            lane.fill += n
            pos += n
            if lane.fill == FRAME_SAMPLES:
                lane.fill = 0
                hit = self._score_frame(lane, start + pos)
                if hit is not None:
                    found.append(hit)
                    self._share_refractory(lane)
                self._check_stop(lane, start + pos)
        return found

    def _share_refractory(self, lane: _Lane) -> None:
        for other in (self._main, self._uncancelled):
            if other is not None and other is not lane:
                other.trigger.block_until(lane.trigger.blocked_until)

    def _check_stop(self, lane: _Lane, frame_end: int) -> None:
        """Listen for "stop" on this lane (either lane may hear it; one refractory for both)."""
        if not self._stop_on or self.stop_word is None or frame_end < self._stop_blocked:
            return
        score = self.stop_word.score(lane.model.embeddings)
        if score >= STOP_THRESHOLD:
            self._stop_blocked = frame_end + int(STOP_REFRACTORY_S * MIC_RATE)
            self.stops.append(StopWordHeard(score, frame_end))

    def _score_frame(self, lane: _Lane, frame_end: int) -> WakeDetected | None:
        model, trigger = lane.model, lane.trigger
        score = model.score(lane.buf)
        micro = None if lane.micro is None else lane.micro.score(lane.buf)
        lane.frames += 1
        if lane is self._main and self.on_score is not None:
            self.on_score(FrameScore(score, micro, frame_end))
        heard = lane.micro is not None and micro is not None and lane.micro.hears(micro)
        emb = model.embeddings if trigger.needs_embeddings(score, heard) else None
        mels = model.mels if trigger.needs_mels(score, heard) else None
        return trigger.update(score, frame_end, model.noise_level, emb, mels, heard=heard)

    def feed(self, block: AudioBlock) -> None:
        """Hand a block to the scoring thread (loop thread; the oldest is dropped when the thread
        has fallen QUEUE_BLOCKS behind). Blocks fed before run() wait for it."""
        self._hand_over(self._inbox, block)

    async def run(
        self,
        source: BlockSource | None,
        on_detect: Callable[[WakeDetected], object],
        on_stop: Callable[[StopWordHeard], object] | None = None,
    ) -> None:
        """Score what `feed()` hands over (and, with a `source`, every block read from it) until
        cancelled; call `on_detect` on the loop for each hit (and `on_stop` for each "stop"
        heard while listening for it)."""
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        worker = threading.Thread(
            target=self._work, args=(inbox, loop, on_detect, on_stop), name="wakeword", daemon=True
        )
        worker.start()
        try:
            if source is None:
                await asyncio.Event().wait()  # fed by feed(); until cancelled
            else:
                while True:
                    self.feed(await source.get())
        finally:
            self._hand_over(inbox, None)
            await asyncio.to_thread(worker.join, 5.0)
            log.info(
                "wake-word detector stopped: %d frames (%d more uncancelled), %d blocks "
                "dropped, %d gaps",
                self.frames,
                self.uncancelled_frames,
                self.dropped,
                self.gaps,
            )

    def _hand_over(self, inbox: queue.Queue[AudioBlock | None], item: AudioBlock | None) -> None:
        while True:
            try:
                inbox.put_nowait(item)
                return
            except queue.Full:
                try:
                    inbox.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _work(
        self,
        inbox: queue.Queue[AudioBlock | None],
        loop: asyncio.AbstractEventLoop,
        on_detect: Callable[[WakeDetected], object],
        on_stop: Callable[[StopWordHeard], object] | None = None,
    ) -> None:
        while (block := inbox.get()) is not None:
            try:
                hits = self.process(block)
            except Exception:
                log.exception("wake-word scoring failed; block skipped")
                continue
            for hit in hits:
                log.info(
                    "wake word %s (score %.2f, ends at %d%s)",
                    hit.model,
                    hit.score,
                    hit.end,
                    how(hit),
                )
                loop.call_soon_threadsafe(on_detect, hit)
            stops, self.stops = self.stops, []
            for stop in stops:
                log.info('"stop" heard (score %.2f, frame ends at %d)', stop.score, stop.end)
                if on_stop is not None:
                    loop.call_soon_threadsafe(on_stop, stop)


def _micro_model(model: WakeModel, cfg: WakewordConfig) -> MicroModel | None:
    """microWakeWord's model for the configured wake word; a broken install of it is logged and
    left out (openWakeWord's model still listens; `doctor` fails on it)."""
    try:
        return micro_model_for(model.spec, cfg)
    except (ImportError, ConfigError, OSError, ValueError, KeyError, RuntimeError) as exc:
        log.error("microWakeWord's model left out, only openWakeWord's listens: %s", exc)
        return None


def how(hit: WakeDetected) -> str:
    """What accepted a detection, for people reading the journal or `wakeword test`."""
    if hit.voice:
        return f", voice {hit.voice}"
    if hit.micro:
        return ", heard by microWakeWord's model"
    return ", accepted by the second stage" if hit.second_stage else ""


def build_detector(cfg: WakewordConfig, state_dir: Path) -> Detector:
    """The detector the daemon and `wakeword test` use: the configured model and every voice
    enrolled in `state_dir` (an unreadable voice file is logged and left out)."""
    voices: list[VoiceVerifier] = []
    vdir = voices_dir(state_dir)
    for path in sorted(vdir.glob("*.npz")) if vdir.is_dir() else []:
        try:
            voices.append(VoiceVerifier.load(path))
        except ValueError as exc:
            log.error("enrolled voice left out: %s", exc)
    if cfg.who_can_wake is WakeAudience.ENROLLED and not voices:
        log.warning(
            "wakeword.who_can_wake = 'enrolled' but no voice is enrolled in %s: only the button "
            "wakes the speaker (livespeaker wakeword enroll --name NAME)",
            vdir,
        )
    elif voices:
        log.info("enrolled voices: %s", ", ".join(v.name for v in voices))
    old = [v.name for v in voices if v.prints is None]
    if cfg.who_can_wake is WakeAudience.ENROLLED and old:
        log.warning(
            "enrolled before voiceprints, so other voices saying the wake word can pass as: %s "
            "(enroll again: livespeaker wakeword enroll --name NAME)",
            ", ".join(old),
        )
    try:
        stop_word: StopWord | None = StopWord.load()
    except ValueError as exc:
        log.error('the "stop" word model is unusable (a button press still stops a ring): %s', exc)
        stop_word = None
    return Detector(cfg, voices=voices, stop_word=stop_word)
