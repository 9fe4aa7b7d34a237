"""The speaker: one output stream for the daemon's life, fed with the model's 24 kHz speech.

    speaker = Speaker(cfg.audio, cfg.state_dir, on_event=events.put_nowait)
    async with speaker.running():          # opens (raises AudioDeviceError if it cannot) ...
        speaker.play(model_pcm_24k)        # queue audio (converted to the device rate with soxr)
        speaker.flush()                    # barge-in: silent at once (the device buffer is dropped)
        await speaker.drain()              # returns when the last sample has been heard
        speaker.set_volume(40)             # 0-100, persisted in state_dir/volume
        speaker.play_earcon(Earcon.WAKE)   # or an ErrorKind
        speaker.start_alert()              # a ring: speech pauses where it is (kept) ...
        speaker.play_alert(ring_pcm_24k)   # ... while the alert plays
        speaker.stop_alert()               # alert silent at once; speech goes on where it paused
    # or: task = asyncio.create_task(speaker.run(), name="speaker")  (retries forever)

The stream stays open (reopening per reply clips reply starts). Outside a conversation
(`hold_open(False)`), after `audio.output_idle_pause_s` with nothing to play it is stopped (no
callbacks: a Pi Zero's idle CPU goes to the wake word) and the next sound starts it again, off the
loop; within a conversation it runs and plays silence between replies.
A small device buffer (`audio.output_latency_ms`) sits behind an unbounded software one (the
PlaybackBuffer, filled by the loop). flush() empties the software buffer, silences the callback
at once and aborts and restarts the stream off the loop, which drops what the device still holds
(measured on the rig: silent within ~5 ms instead of the device latency). A reply that starts
from silence on a running stream starts it the same way, a "fresh start", so it is not heard
behind the device buffer's silence: it is held in the buffer (the callback takes nothing) until
enough is queued for PortAudio's first fill or FRESH_WAIT_S has passed, then the stream is
aborted and started again with FRESH_PAD_MS of silence ahead of the sound (the rig's PulseAudio
loses the first ~9 ms of a restarted stream). Measured in tests/bench/bench_latency.py: model
audio -> heard 40.7 ms, the cookbook loop 52.9 ms in the same run (before: 59.1 ms, 66.6).
Waiting for the first fill matters: a fresh start under the first 20-40 ms chunk alone ran dry
as the rest trickled in (gaps of 6-26 ms in 5 of 8 runs of test_speaker's gapless answer). A
fresh start that has not begun within FRESH_CLAIM_S of being asked (a loaded machine) is given
up and the reply plays as it would have without one (a _Hold: whichever side moves first
decides). Not for earcons (play_sound: a wake chime held under load landed on the question in
a CI run), not with an echo canceller (its reference wants an unbroken stream), not while a ring
plays. The callback scales by the volume and records, on
the monotonic clock, when its last sample will have been heard (PortAudio's time info), which is
what `drain()` and `is_playing` use: asking them costs no call into PortAudio. With an
EchoReference (echo_mode "aec") it also hands each block it wrote over to it, with that time. Underruns (the
buffer ran dry inside a reply and more of it came after) play silence and are counted; running
dry at a reply's end, before the server says it is complete, is none.

An alert (a timer's ring) has its own buffer and resampler. From start_alert() to stop_alert()
the callback plays the alert buffer only: speech queued meanwhile (the rest of an answer, and
what the model still sends) waits where it is and plays after stop_alert(), so the speaker never
talks over its ring and an answer is not lost to it. drain() waits for speech only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any

from device.audio import alsa_log, devices, earcons
from device.audio.convert import SpeakerConverter
from device.audio.devices import Direction, StreamFormat
from device.audio.playback import PlaybackBuffer
from device.audio.supervisor import DeviceSupervisor, EventSink, run_in_task
from device.audio.volume import VolumeStore, clamp, gain
from device.config import AudioConfig
from device.events import MODEL_RATE, ErrorKind

if TYPE_CHECKING:
    from device.audio.aec import EchoReference

log = logging.getLogger(__name__)

STUCK_S = 5.0
"""An abort (flush, idle pause) or a start that has not returned after this long is reported as a failure:
PortAudio waits on a sound server or driver that no longer answers (a stopped PulseAudio keeps
`abort()` waiting for as long as it is stopped). Reported, the error shows, and the supervisor
opens the device again once it answers; unreported, the speaker would stay silent for good."""


FRESH_PAD_MS = 20
"""Silence a fresh start plays before the sound: the rig's PulseAudio damages the first few ms
of a restarted stream (without a pad the first 10 ms of a sound were damaged in 5 of 12 trials
on the rig, with 5 ms in 6 of 6 runs; with 10 and 20 ms whole in all). It is also the reply's
cushion after the first fill (which takes what is queued less the pad): with 10 ms, a first
chunk of 63 ms left 10 ms to cover the 25 ms until the next one, and every reply of the soak
had a gap (1 underrun per conversation; 0 with 20 ms). Each ms of it is a ms later that a reply
is heard."""
FRESH_WAIT_S = 0.03
"""A sound that starts from silence waits at most this long for enough audio to fill the device
buffer before its fresh start (a short sound, or a server slower than real time)."""
FRESH_LIVE_S = 0.1
"""Only a stream that called back this recently is started afresh, not one whose server has gone
away unnoticed. A restart while the sound server goes away can hang in PortAudio's start() for
good, holding devices.LOCK (seen on the rig: PulseAudio terminated within a fresh start); it is
reported after STUCK_S. A flush's restart has that risk too, but a fresh start comes with every
reply."""
FRESH_CLAIM_S = 0.02
"""A fresh start that has not begun this long after it was asked for (a busy executor, another
stream operation holding devices.LOCK, a loaded CPU) is given up: the sound plays behind the
device's silence, as it would without one, instead of waiting longer."""


class _Phase(Enum):
    """Where an open output stream is."""

    RUNNING = "running"
    """PortAudio calls back in real time and the callback plays the buffer."""
    CUTTING = "cutting"
    """flush(): the callback plays silence until the stream has been aborted (dropping what the
    device holds) and started again; not a failure, and not a moment for queued audio to play."""
    PAUSED = "paused"
    """Stopped on purpose while idle (no callbacks); play() starts it again. Not a failure."""
    FINISHED = "finished"
    """The stream stopped by itself (device gone): the supervisor reopens."""


class _HoldPhase(Enum):
    """Where a sound held for a fresh start is."""

    WAITING = "waiting"
    """Held in the buffer (the callback takes nothing): gathering PortAudio's first fill."""
    STARTING = "starting"
    """The fresh start claimed it (off the loop): the restart ends the hold."""
    OVER = "over"
    """Released: the sound plays, after a fresh start or behind the device's silence."""


_HOLD_MOVES: dict[_HoldPhase, frozenset[_HoldPhase]] = {
    _HoldPhase.WAITING: frozenset({_HoldPhase.STARTING, _HoldPhase.OVER}),
    _HoldPhase.STARTING: frozenset({_HoldPhase.OVER}),
    _HoldPhase.OVER: frozenset(),
}
"""The moves a hold may make: once claimed, only the restart ends it; once over, it stays over."""


class _Hold:
    """A sound held in the speech buffer for its stream's fresh start. Two threads may move it
    on, and the first decides: the fresh start (off the loop) claims it, or the loop releases it
    (a flush, a ring, or the fresh start not begun by its deadline) and the sound plays as is."""

    def __init__(self, buf: PlaybackBuffer) -> None:
        self.buf = buf
        self.phase = _HoldPhase.WAITING
        self.taken = buf.taken
        """`buf.taken` when the hold began: if the callback took any of the sound since (a
        callback already under way), the device holds the sound's start, not silence."""
        self.deadline = float("inf")
        """Monotonic time by which the fresh start must claim the hold (set when it is asked)."""
        self._lock = threading.Lock()
        buf.held = True  # before the sound is queued: the callback must not take it behind silence

    def claim(self) -> bool:
        """(The fresh start, devices.LOCK held) True if the restart may go ahead; otherwise the
        hold is over and the sound plays as is."""
        with self._lock:
            if (
                self.phase is _HoldPhase.WAITING
                and time.monotonic() <= self.deadline
                and self.buf.taken == self.taken
                and not self.buf.is_empty()
            ):
                self._move(_HoldPhase.STARTING)
                return True
            self._move(_HoldPhase.OVER)
            return False

    def release(self) -> None:
        """(The loop) No fresh start after all, unless one has already claimed the hold."""
        with self._lock:
            if self.phase is _HoldPhase.WAITING:
                self._move(_HoldPhase.OVER)

    def end(self) -> None:
        """(Either side) The sound plays from now on, whatever the phase."""
        with self._lock:
            self._move(_HoldPhase.OVER)

    def _move(self, to: _HoldPhase) -> None:
        if to is not self.phase and to not in _HOLD_MOVES[self.phase]:
            raise AssertionError(f"fresh-start hold: {self.phase.value} -> {to.value}")
        self.phase = to
        if to is _HoldPhase.OVER:
            self.buf.held = False


class _OutputStream:
    """One open PortAudio output stream whose callback drains the PlaybackBuffer."""

    def __init__(self, fmt: StreamFormat, block_ms: int, owner: Speaker) -> None:
        import sounddevice as sd

        self.fmt = fmt
        self.callbacks = 0
        self.heard_until = 0.0
        """Monotonic time at which the last speech sample written so far will have been heard."""
        self.alert_heard_until = 0.0
        """The same for the alert's samples."""
        self.reply_heard_until = 0.0
        """The same for speech that is no earcon (a reply): the echo gate's long tail."""
        self.underruns = 0
        """Gaps inside a reply: the buffer ran dry and more of the reply came after (loop side)."""
        self.ran_dry = False
        """The buffer ran dry while a reply was in progress (callback side): a gap if more of it
        comes, the reply's end if drain() or flush() comes first."""
        self.underflows = 0
        """PortAudio output underflows: the device itself ran dry (callback too late)."""
        self.longest_gap = 0.0
        """The longest wait between two callbacks while a sound played (s): how long the device
        had to cover from what it held (a stall longer than its buffer is an underflow)."""
        self._sounding_at = 0.0
        """Monotonic time of the latest callback if it played sound, else 0.0."""
        self.first_callback_at = 0.0
        self.last_callback_at = 0.0
        """Monotonic times of the first and the latest callback."""
        self.phase = _Phase.RUNNING
        self._blocked_since: float | None = None
        """When an abort or a start began that has not returned yet (any thread)."""
        self._blocked_in = "stop"
        self.closed = False
        """Closed (set under devices.LOCK): the stream must not be touched again."""
        self._dry = True
        self.pad_frames = 0
        """Silence the callback plays before the buffer after a fresh start."""
        self._last_progress = time.monotonic()
        self._last_callbacks = 0
        self.latency = owner.cfg.output_latency_ms / 1000
        try:
            self.stream = sd.OutputStream(
                device=fmt.device.index,
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="float32",
                blocksize=max(1, fmt.rate * block_ms // 1000),
                latency=self.latency,
                callback=self._callback(owner),
                finished_callback=self._finished,
            )
        except Exception as exc:
            raise devices.open_error(exc, fmt.device, Direction.OUTPUT) from exc
        devices.stream_opened()
        self.latency = float(self.stream.latency)
        try:
            self.stream.start()
        except Exception as exc:
            self.close()
            raise devices.open_error(exc, fmt.device, Direction.OUTPUT) from exc

    def _callback(self, owner: Speaker) -> Callable[[Any, int, Any, Any], None]:
        """The PortAudio callback: plays the alert buffer while alerting, else speech."""
        rate, speech, alert = self.fmt.rate, owner.buffer, owner.alert_buffer
        reference = owner.reference

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            dac = time_info.outputBufferDacTime
            ahead = min(max(dac - time_info.currentTime, 0.0), 1.0) if dac else self.latency
            mono = outdata[:, 0]
            alerting = owner.alerting
            buf = alert if alerting else speech
            lead = n = 0
            if self.phase is _Phase.RUNNING:
                if self.pad_frames:  # a fresh start: its pad first
                    lead = min(self.pad_frames, frames)
                    mono[:lead] = 0.0
                    self.pad_frames -= lead
                n = buf.read_into(mono[lead:], owner.gain)
            if lead + n < frames:
                mono[lead + n :] = 0.0
                if owner.expect_more and not alerting and not self._dry:
                    self.ran_dry = True  # an underrun if more of the reply comes (play())
                self._dry = True
            else:
                self._dry = False
            if status.output_underflow:  # the callback came too late: the device ran dry
                self.underflows += 1
            if self._sounding_at and now - self._sounding_at > self.longest_gap:
                self.longest_gap = now - self._sounding_at
            self._sounding_at = now if n else 0.0
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]
            if reference is not None:  # echo_mode "aec": what is played, and when
                reference.put(now + ahead, mono.copy(), rate)
            if n:
                heard = now + ahead + (lead + n) / rate
                if alerting:
                    self.alert_heard_until = heard
                else:
                    self.heard_until = heard
                    if buf.reply_end:
                        self.reply_heard_until = now + ahead + (lead + buf.reply_end) / rate
            self.last_callback_at = now
            if not self.callbacks:
                self.first_callback_at = self.last_callback_at
            self.callbacks += 1

        return callback

    def _finished(self) -> None:
        if self.phase is _Phase.RUNNING:  # an abort by cut() is not the end
            self.phase = _Phase.FINISHED

    def start_cut(self) -> bool:
        """Silence the callback now (loop thread); False if a cut is under way or it is dead."""
        if self.phase is not _Phase.RUNNING:
            return False
        self.phase = _Phase.CUTTING
        return True

    def cut(self) -> None:
        """After start_cut(), off the loop: abort (drop the device buffer) and start again."""
        with devices.LOCK:
            if not self.closed and self._abort("for a flush"):
                self._start_again("after a flush")

    def fresh_start(self, hold: _Hold, pad_frames: int) -> None:
        """Off the loop: a sound that starts from silence (held in its buffer) is heard without
        waiting behind the silence the device holds: abort (dropping it) and start again with
        the callback playing `pad_frames` of silence and then the sound from its first fill.
        Given up (the sound plays as is) if the hold was released, the callback took some of the
        sound, or devices.LOCK is not this thread's by the hold's deadline."""
        remaining = hold.deadline - time.monotonic()
        if remaining <= 0 or not devices.LOCK.acquire(timeout=remaining):
            hold.end()
            return
        try:
            if self.closed or self.phase is not _Phase.RUNNING or not hold.claim():
                return
            self.phase = _Phase.CUTTING  # _finished ignores the abort, failure() too
            if not self._abort("for a fresh start"):
                return
            self.pad_frames = pad_frames
            hold.end()  # before start(): PortAudio's first fill plays the sound
            self._start_again("for a fresh start", play_at_once=True)
        finally:
            devices.LOCK.release()
            hold.end()

    def pause(self, still_idle: Callable[[], bool]) -> bool:
        """Off the loop: stop calling back while there is nothing to play (idle); False if a
        sound came meanwhile.

        The loop decided to pause a moment ago; a sound queued since then must not lose what
        the abort would drop. `still_idle` is asked again once the callback plays silence
        (PAUSED): play() queues before it wakes a PAUSED stream, so a sound queued after that
        second look restarts the stream and plays whole.
        """
        with devices.LOCK:
            if self.closed or self.phase is not _Phase.RUNNING or not still_idle():
                return False
            self.phase = _Phase.PAUSED  # first: the callback plays silence, _finished ignores it
            if not still_idle():
                self.phase = _Phase.RUNNING
                return False
            return self._abort("while idle")

    def _abort(self, when: str) -> bool:
        """Stop the stream and drop what the device holds (devices.LOCK held); False (and
        FINISHED, for the supervisor to reopen) if it cannot."""
        self._blocked_in, self._blocked_since = "stop", time.monotonic()
        try:
            self.stream.abort()
        except Exception as exc:
            log.warning("speaker: cannot stop the output stream %s: %s", when, exc)
            self.phase = _Phase.FINISHED
            return False
        finally:
            self._blocked_since = None
        # What was on its way to the DAC is gone.
        self.heard_until = self.alert_heard_until = self.reply_heard_until = 0.0
        self._sounding_at = 0.0  # the wait until the next callback is no stall
        return True

    def resume(self) -> None:
        """Off the loop: start a paused stream again (a no-op unless paused)."""
        with devices.LOCK:
            if not self.closed and self.phase is _Phase.PAUSED:
                self._start_again("after an idle pause")

    def _start_again(self, when: str, *, play_at_once: bool = False) -> None:
        """Start the stopped stream (devices.LOCK held): RUNNING, or FINISHED if it cannot.
        `play_at_once`: RUNNING before PortAudio's first fill, which then plays the buffer (else
        that fill is silence)."""
        # First: not yet active, but RUNNING may be set next, and that is no failure.
        self._blocked_in, self._blocked_since = "start", time.monotonic()
        if play_at_once:
            self.phase = _Phase.RUNNING
        try:
            self.stream.start()
        except Exception as exc:  # the supervisor reopens a stream that cannot restart
            log.warning("speaker: cannot start the output stream %s: %s", when, exc)
            self.phase = _Phase.FINISHED
            return
        finally:
            self._blocked_since = None
        self._last_progress = time.monotonic()
        self.phase = _Phase.RUNNING

    def failure(self) -> str | None:
        blocked = self._blocked_since
        if blocked is not None and time.monotonic() - blocked > STUCK_S:
            return (
                f"output on {self.fmt.device.name!r} did not {self._blocked_in} within "
                f"{STUCK_S:.0f} s (the sound server or its driver does not answer)"
            )
        phase = self.phase
        if phase is _Phase.CUTTING or phase is _Phase.PAUSED or blocked is not None:
            return None  # a cut, a pause, or an abort or start under way (not stuck yet)
        if phase is _Phase.FINISHED or (not self.stream.active and self.phase is _Phase.RUNNING):
            return f"output stream on {self.fmt.device.name!r} stopped (device unplugged or gone?)"
        now = time.monotonic()
        if self.callbacks != self._last_callbacks:
            self._last_callbacks = self.callbacks
            self._last_progress = now
        elif now - self._last_progress > 3.0:
            return (
                f"output on {self.fmt.device.name!r} stalled for {now - self._last_progress:.1f} s"
            )
        return None

    def close(self) -> None:
        """Close now, or, if another thread holds devices.LOCK (a restart, or an abort that
        hangs on the device), on a thread once it is done: closing under a running start()
        aborts the process, and waiting here would block the loop."""
        if not devices.LOCK.acquire(blocking=False):
            threading.Thread(
                target=self._close_when_stopped, name="speaker-close", daemon=True
            ).start()
            return
        try:
            self._close_locked()
        finally:
            devices.LOCK.release()

    def _close_when_stopped(self) -> None:
        with devices.LOCK:
            self._close_locked()

    def _close_locked(self) -> None:
        """(devices.LOCK held) A restart queued for later finds it closed and does nothing."""
        self.closed = True
        devices.close_stream(self.stream)


class Speaker:
    """Plays 24 kHz mono int16 speech and earcons on the configured output device."""

    def __init__(
        self,
        cfg: AudioConfig,
        state_dir: str | os.PathLike[str],
        *,
        on_event: EventSink | None = None,
        rate: int | None = None,
        channels: int | None = None,
        reference: EchoReference | None = None,
    ) -> None:
        """rate/channels force an opening format (None: the device's own); `reference` gets
        every block played and when it is heard (the echo canceller's reference)."""
        self.cfg = cfg
        self.reference = reference
        self._rate = rate
        self._channels = channels
        self.buffer = PlaybackBuffer()
        """Speech (the model's answers) and earcons."""
        self.alert_buffer = PlaybackBuffer()
        """A ring, played instead of speech while `alerting`."""
        self.alerting = False
        """start_alert() .. stop_alert(): the callback plays the alert buffer; speech waits."""
        self._volume = VolumeStore(state_dir, cfg.volume)
        self._level = self._volume.load()
        self._floor = 0
        """The least level played while a timer rings (hold_volume_floor); 0: none."""
        self._persist_lock = threading.Lock()
        self.gain = gain(self._level)
        """Linear gain applied in the callback (a float: replaced atomically)."""
        self.expect_more = False
        """A reply is in progress (set by play, cleared by drain/flush): a dry buffer, then more
        of the reply = an underrun."""
        self._hold = False
        """A conversation is on: the stream runs even with nothing to play (replies start at once)."""
        self._busy_at = time.monotonic()
        """Monotonic time the speaker last had something to do (idle pause counts from it)."""
        self._stream: _OutputStream | None = None
        self._heard_until = 0.0
        self._reply_heard_until = 0.0
        self._converter: SpeakerConverter | None = None
        self._alert_converter: SpeakerConverter | None = None
        self._fresh: _Hold | None = None
        """A sound from silence held for a fresh start that has not been asked for yet."""
        self._fresh_timer: asyncio.TimerHandle | None = None
        """When the held sound's fresh start is asked for even if the first fill is not queued."""
        self.fresh_starts = 0
        """Fresh starts asked for (a reply from silence on a running stream)."""
        self.dropped_while_down = 0
        """24 kHz samples discarded because no output device was open."""
        self._past_underruns = self._past_underflows = 0
        self._past_longest_gap = 0.0
        """Counts (and the longest callback gap) of the streams opened before the current one."""
        self.format: StreamFormat | None = None
        """The format of the open (or last opened) stream."""
        self.supervisor = DeviceSupervisor(Direction.OUTPUT, self._open, on_event)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the output open until cancelled (reopens with backoff on failures)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.supervisor.run(), name="speaker-supervisor")
                if self.cfg.output_idle_pause_s > 0:
                    tg.create_task(self._pause_when_idle(), name="speaker-idle")
        finally:
            self._retire_stream()
            alsa = alsa_log.summary()
            log.info(
                "speaker: %d underruns, %d device underflows, callbacks at most %.0f ms apart "
                "while playing%s",
                self.underruns,
                self.underflows,
                self.longest_callback_gap * 1000,
                f"; alsa-lib messages left out: {alsa}" if alsa else "",
            )

    @contextlib.asynccontextmanager
    async def running(self, open_timeout_s: float = 15.0) -> AsyncIterator[Speaker]:
        """Run in a task; raises the open error if the first open fails."""
        async with run_in_task(self.run, self.supervisor, "speaker", open_timeout_s):
            yield self

    def _open(self) -> _OutputStream:
        dev = devices.resolve(self.cfg.output_device, Direction.OUTPUT)
        fmt = devices.choose_format(dev, Direction.OUTPUT, self._rate, self._channels)
        self.buffer.flush()  # audio converted for a previous stream's rate must not play
        self.alert_buffer.flush()
        self._release_fresh()
        self._converter = SpeakerConverter(MODEL_RATE, fmt.rate)
        self._alert_converter = SpeakerConverter(MODEL_RATE, fmt.rate)
        stream = _OutputStream(fmt, self.cfg.output_block_ms, self)
        self._retire_stream()
        self._stream = stream
        self.format = fmt
        log.info(
            "speaker open: %s at %d Hz, %d channel(s), latency %.0f ms",
            dev.describe(),
            fmt.rate,
            fmt.channels,
            stream.latency * 1000,
        )
        return stream

    async def _pause_when_idle(self) -> None:
        """Stop the stream once nothing has been played or held for `output_idle_pause_s`."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            stream, now = self._stream, time.monotonic()
            if self._hold or self.expect_more or self.is_playing or not self.flowing:
                self._busy_at = now
            elif (
                stream is not None
                and stream.phase is _Phase.RUNNING
                and now - self._busy_at >= self.cfg.output_idle_pause_s
                and await loop.run_in_executor(None, stream.pause, partial(self._idle, now))
            ):
                log.debug("speaker: idle, output stream stopped")

    def _idle(self, since: float) -> bool:
        """Nothing queued and nothing asked of the speaker since `since` (any thread)."""
        return (
            self._busy_at <= since
            and not self._hold
            and self.buffer.is_empty()
            and self.alert_buffer.is_empty()
        )

    def hold_open(self, on: bool) -> None:
        """A conversation starts (True) or ends (False): keep the stream running meanwhile."""
        self._hold = on
        self._busy_at = time.monotonic()
        if on:
            self._wake()

    def _wake(self) -> None:
        """Start a paused stream again (off the loop); audio queued meanwhile plays once it runs."""
        stream = self._stream
        if stream is None or stream.phase is not _Phase.PAUSED:
            return
        try:
            asyncio.get_running_loop().run_in_executor(None, stream.resume)
        except RuntimeError:  # no loop: this thread may block
            stream.resume()

    # --- playback -------------------------------------------------------------------------

    def play(self, pcm24k: bytes) -> None:
        """Queue model audio (24 kHz mono int16) behind what is already queued."""
        if self._queue(self.buffer, self._converter, pcm24k, fresh=True):
            self.expect_more = True
            stream = self._stream
            if stream is not None and stream.ran_dry:  # more after a dry spell: a gap
                stream.ran_dry = False
                stream.underruns += 1

    def _queue(
        self,
        buf: PlaybackBuffer,
        conv: SpeakerConverter | None,
        pcm24k: bytes,
        *,
        fresh: bool = False,
        whole: bool = False,
        earcon: bool = False,
    ) -> bool:
        """Convert and queue; False (and counted as dropped) while no output device is open.
        `fresh`: a reply, which starts the stream afresh if it starts from silence. `whole`: a
        complete sound, converted with the resampler's tail (else its last ~8 ms would wait in
        the resampler and come out ahead of the next sound: a blip before the next reply).
        `earcon`: a short sound, whose echo the echo gate waits out with its short tail."""
        if not self.supervisor.ready.is_set() or conv is None:
            self.dropped_while_down += len(pcm24k) // 2
            return False
        if fresh and self._fresh is None and self._fresh_start_fits():
            self._fresh = _Hold(buf)
            loop = asyncio.get_running_loop()
            self._fresh_timer = loop.call_later(FRESH_WAIT_S, self._start_fresh)
        buf.push(conv.convert(pcm24k, last=whole), earcon=earcon)
        self._busy_at = time.monotonic()
        self._wake()
        if self._fresh is not None and buf.frames() >= self._fill_frames():
            self._start_fresh()
        return True

    def _fresh_start_fits(self) -> bool:
        """A reply starts from silence on a running stream: the device holds nothing but
        silence, which a fresh start drops so the reply is heard a device buffer sooner. Not
        while a ring plays, not with an echo canceller (its reference wants an unbroken stream).
        Earcons do not start afresh: a wake chime must sound at once, and under load a fresh
        start may wait (on the executor, on devices.LOCK), which would push it into the question."""
        stream = self._stream
        if stream is None or stream.phase is not _Phase.RUNNING or not self.flowing:
            return False
        if time.monotonic() - stream.last_callback_at > FRESH_LIVE_S:
            return False  # not calling back now: a card gone or a server that stalls
        if self.alerting or self.reference is not None or not self.buffer.is_empty():
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return max(stream.heard_until, stream.alert_heard_until) <= time.monotonic()

    def _fill_frames(self) -> int:
        """Audio queued for a fresh start not to run dry: PortAudio's first fill (the device
        buffer and a callback block) less the pad."""
        rate = self.format.rate if self.format else MODEL_RATE
        fill_ms = self.cfg.output_latency_ms + 2 * self.cfg.output_block_ms - FRESH_PAD_MS
        return rate * fill_ms // 1000

    def _start_fresh(self) -> None:
        """Enough queued, or waited long enough: ask for the fresh start, off the loop; if it
        has not claimed the hold within FRESH_CLAIM_S, the sound plays as is."""
        hold, stream = self._fresh, self._stream
        self._fresh = None
        self._cancel_fresh_timer()
        if hold is None:
            return
        if stream is None:
            hold.end()
            return
        self.fresh_starts += 1
        loop = asyncio.get_running_loop()
        hold.deadline = time.monotonic() + FRESH_CLAIM_S
        loop.call_later(FRESH_CLAIM_S, hold.release)
        pad = stream.fmt.rate * FRESH_PAD_MS // 1000
        loop.run_in_executor(None, stream.fresh_start, hold, pad)

    def _cancel_fresh_timer(self) -> None:
        if self._fresh_timer is not None:
            self._fresh_timer.cancel()
            self._fresh_timer = None

    def _release_fresh(self) -> None:
        """No fresh start after all (a flush, a ring, a new stream): the buffer plays as is."""
        self._cancel_fresh_timer()
        if self._fresh is not None:
            self._fresh.end()
            self._fresh = None
        self.buffer.held = False

    def play_sound(self, pcm24k: bytes) -> None:
        """Queue a short sound (an earcon, 24 kHz mono int16): it plays as it comes, never held
        for a fresh start, and is no reply (a dry buffer after it is no underrun)."""
        self._queue(self.buffer, self._converter, pcm24k, whole=True, earcon=True)

    def play_earcon(self, kind: earcons.Earcon | ErrorKind) -> None:
        """Queue an earcon (nothing if `audio.earcons` is off)."""
        if self.cfg.earcons:
            self.play_sound(earcons.pcm(kind))

    def flush(self) -> float:
        """Stop speech at once: discard everything queued; returns the seconds discarded.

        While an alert plays, what the device holds is the alert's: only the queue is dropped.
        """
        self._end_reply()
        self._release_fresh()
        if not self.alerting:
            self._cut(self.speech_playing)
        frames = self.buffer.flush()
        if self._converter is not None:
            frames += self._converter.pending()
            self._converter.reset()
        rate = self.format.rate if self.format else MODEL_RATE
        return frames / rate

    def _end_reply(self) -> None:
        """No more of this reply is coming: running dry now is its end, not an underrun."""
        self.expect_more = False
        if self._stream is not None:
            self._stream.ran_dry = False

    def _cut(self, audible: bool) -> None:
        """Silence the callback now and drop what the device holds (off the loop)."""
        stream = self._stream
        self._keep_heard_until()  # the echo gate's tail counts from what was on its way
        if stream is not None and audible and stream.start_cut():
            try:
                asyncio.get_running_loop().run_in_executor(None, stream.cut)
            except RuntimeError:  # no loop: this thread may block
                stream.cut()

    # --- alerts (a ring) --------------------------------------------------------------------

    def start_alert(self) -> None:
        """From now the alert buffer plays instead of speech; speech keeps its place."""
        self._release_fresh()
        self.alerting = True
        self._busy_at = time.monotonic()
        self._wake()

    def play_alert(self, pcm24k: bytes) -> None:
        """Queue alert audio (24 kHz mono int16); plays only between start_ and stop_alert()."""
        self._queue(self.alert_buffer, self._alert_converter, pcm24k)

    def stop_alert(self) -> None:
        """Silence the alert within one output block; speech goes on from where it paused."""
        if not self.alerting:
            return
        self._cut(self.is_playing)  # the device holds alert audio: dropped, not played out
        self.alerting = False
        self.alert_buffer.flush()
        if self._alert_converter is not None:
            self._alert_converter.reset()
        self._busy_at = time.monotonic()

    async def drain(self) -> None:
        """Return when everything queued has been played, i.e. its last sample has been heard."""
        conv = self._converter
        if conv is not None:
            self.buffer.push(conv.convert(b"", last=True))  # the resampler's tail
        self._end_reply()
        seen: int | None = None
        while True:  # polled: the callback thread only counts and stamps times
            stream = self._stream
            if stream is None or not self.supervisor.ready.is_set():
                return
            if not self.buffer.is_empty():
                pass
            elif seen is None:
                # The callback that took the last chunk may still be running: let it finish.
                seen = stream.callbacks
            elif stream.callbacks >= seen + 2 and stream.heard_until <= time.monotonic():
                return
            await asyncio.sleep(0.005)

    @property
    def flowing(self) -> bool:
        """The output stream is open and PortAudio pulls audio from it in real time.

        At start PortAudio calls back a burst of times to pre-fill the device buffer, and then a
        new PulseAudio client can wait ~1.8 s before the next callback: audio queued in between
        (a wake chime) plays that much later, and the echo gate stays closed until it has. So
        the callbacks must have gone on for longer than that pre-fill burst.
        """
        stream = self._stream
        if stream is None or not self.supervisor.ready.is_set() or not stream.callbacks:
            return False
        if stream.phase is _Phase.PAUSED:
            return True  # it flowed before it was paused, and starts again when needed
        prefill_s = stream.latency + self.cfg.output_block_ms / 1000
        return stream.last_callback_at - stream.first_callback_at > prefill_s

    @property
    def is_playing(self) -> bool:
        """Audio (speech or an alert) is queued to play or still on its way to the DAC."""
        stream = self._stream
        if stream is None or not self.supervisor.ready.is_set():
            return False
        if self.alerting and not self.alert_buffer.is_empty():
            return True
        return self.speech_playing or stream.alert_heard_until > time.monotonic()

    @property
    def heard_until(self) -> float:
        """Monotonic time at which the last sound played so far was (or will be) heard; 0.0
        before any. Kept across idle pauses, so the echo gate knows about a sound it never saw."""
        return self._keep_heard_until()

    @property
    def reply_heard_until(self) -> float:
        """The same for the last sound that was no earcon (a reply, a ring): its echo lasts
        longer than a short chime's."""
        self._keep_heard_until()
        return self._reply_heard_until

    def _keep_heard_until(self) -> float:
        """Fold the stream's heard times into `_heard_until` and `_reply_heard_until` (an abort
        zeroes the stream's)."""
        stream = self._stream
        if stream is not None:
            self._heard_until = max(self._heard_until, stream.heard_until, stream.alert_heard_until)
            self._reply_heard_until = max(
                self._reply_heard_until, stream.reply_heard_until, stream.alert_heard_until
            )
        return self._heard_until

    @property
    def speech_playing(self) -> bool:
        """Speech is queued (also while paused for an alert) or still on its way to the DAC."""
        stream = self._stream
        if stream is None or not self.supervisor.ready.is_set():
            return False
        if not self.buffer.is_empty():
            return True
        return stream.heard_until > time.monotonic()

    @property
    def underflows(self) -> int:
        """PortAudio output underflows (the device ran dry), over every stream opened so far."""
        stream = self._stream
        return self._past_underflows + (stream.underflows if stream else 0)

    @property
    def underruns(self) -> int:
        """Times the buffer ran dry in the middle of a reply, over every stream opened so far."""
        stream = self._stream
        return self._past_underruns + (stream.underruns if stream else 0)

    @property
    def longest_callback_gap(self) -> float:
        """The longest wait between two callbacks while a sound played (s), over every stream
        opened so far: what a stall (the garbage collector, a busy CPU) left the device to cover."""
        stream = self._stream
        return max(self._past_longest_gap, stream.longest_gap if stream else 0.0)

    def _retire_stream(self) -> None:
        """The stream is replaced or the speaker stops: keep its counts (and its heard times)."""
        self._keep_heard_until()
        stream, self._stream = self._stream, None
        if stream is not None:
            self._past_underruns += stream.underruns
            self._past_underflows += stream.underflows
            self._past_longest_gap = max(self._past_longest_gap, stream.longest_gap)

    # --- volume ---------------------------------------------------------------------------

    @property
    def volume(self) -> int:
        """Software volume 0-100."""
        return self._level

    def set_volume(self, level: int) -> int:
        """Set and persist the volume (clamped to 0-100); returns the level set."""
        self._level = clamp(level)
        self.gain = gain(max(self._level, self._floor))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._persist()
        else:  # fsync on an SD card can take a while: not on the loop
            loop.run_in_executor(None, self._persist)
        return self._level

    def hold_volume_floor(self, level: int) -> None:
        """Play at least `level` percent (a ring is never silent) until called with 0; the set
        volume is kept and persisted as it is."""
        self._floor = clamp(level)
        self.gain = gain(max(self._level, self._floor))

    def _persist(self) -> None:
        with self._persist_lock:  # the latest level wins, whatever order the writes run in
            try:
                self._volume.save(self._level)
            except OSError as exc:
                log.warning("cannot save the volume to %s: %s", self._volume.path, exc)
