"""The speaker's two kinds of output stream; the Speaker (device.audio.speaker) owns one at a time.

- WriterOutput (echo_mode "half_duplex" and "full_duplex"): a blocking PortAudio stream that one
  writer thread owns. The thread waits for audio, takes a block (`audio.output_block_ms`) from
  the PlaybackBuffer, writes it and takes the next; the device buffer (`audio.output_latency_ms`)
  paces it. With nothing to write it writes nothing: the device runs dry, and the next sound is
  written into an empty device buffer and heard at once, from its first sample (a callback
  stream plays silence between sounds, and a sound queued behind that silence is heard a device
  buffer later). Measured in tests/bench/bench_latency.py against Google's cookbook audio loop,
  which plays the same way. A flush (barge-in) or the end of a ring is the writer's to carry
  out, between two writes: abort (dropping what the device holds) and start again; the loop
  only asks. Idle, the thread sleeps: no calls into PortAudio, no CPU.
- CallbackOutput (echo_mode "aec"): PortAudio's callback drains the PlaybackBuffer. The echo
  canceller's reference needs to know when each block is heard, which only the callback's time
  info tells (the DAC time), and an unbroken stream. Outside a conversation it is stopped after
  `audio.output_idle_pause_s` with nothing to play (no callbacks: a Pi Zero's idle CPU goes to
  the wake word) and the next sound starts it again, off the loop.

Both stamp, on the monotonic clock, when their last sample will have been heard (speech, an
alert, and speech that is no earcon: the echo gate's tails), which is what `drain()` and
`is_playing` read without asking PortAudio; both count underruns (the buffer ran dry inside a
reply and more of it came after) and PortAudio's underflows, and report a stream that died or
an abort, start or write that hangs (a sound server that stopped answering) to the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from device.audio import devices
from device.audio.devices import Direction, StreamFormat
from device.audio.stream_time import monotonic_at

if TYPE_CHECKING:
    from device.audio.playback import PlaybackBuffer
    from device.audio.speaker import Speaker

log = logging.getLogger(__name__)

STUCK_S = 5.0
"""An abort (flush, idle pause), a start or a write that has not returned after this long is
reported as a failure: PortAudio waits on a sound server or driver that no longer answers (a
stopped PulseAudio keeps `abort()` waiting for as long as it is stopped). Reported, the error
shows, and the supervisor opens the device again once it answers; unreported, the speaker would
stay silent for good."""

STALL_S = 3.0
"""A stream that has taken no audio (called back, or made room for a write) for this long
while there was audio to play is reported as stalled."""
CLOSE_WAIT_S = 0.1
"""How long close() waits for the writer to close its stream before it lets it finish alone."""
WRITER_IDLE_S = 1.0
"""How often the idle writer asks its stream how much room it has (a close or a sound wakes it
at once): a device that went away between sounds is reported then, not at the next sound (one
call into PortAudio a second; it changes nothing for the next sound, measured on the rig)."""


class Phase(Enum):
    """Where an open output stream is."""

    RUNNING = "running"
    """Audio taken from the buffer is played."""
    CUTTING = "cutting"
    """A flush: asked to drop what the device holds (abort and start again); not a failure, and
    not a moment for queued audio to play."""
    PAUSED = "paused"
    """(CallbackOutput) Stopped on purpose while idle (no callbacks); play() starts it again."""
    FINISHED = "finished"
    """The stream stopped by itself (device gone) or could not go on: the supervisor reopens."""


_MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.RUNNING: frozenset({Phase.CUTTING, Phase.PAUSED, Phase.FINISHED}),
    Phase.CUTTING: frozenset({Phase.RUNNING, Phase.FINISHED}),
    Phase.PAUSED: frozenset({Phase.RUNNING, Phase.FINISHED}),
    Phase.FINISHED: frozenset(),
}
"""The moves an output stream's phase may make; once finished, the supervisor opens a new one."""


def _source(owner: Speaker) -> tuple[PlaybackBuffer, bool]:
    """The buffer to play from now: the alert's while a ring plays, else speech."""
    alerting = owner.alerting
    return (owner.alert_buffer if alerting else owner.buffer), alerting


class _Output:
    """What both kinds keep: heard times, counts, the stream, and its failure report."""

    PAUSES = False
    """Stopped while idle by the speaker's idle task (only a callback stream needs it)."""

    def __init__(self, fmt: StreamFormat, owner: Speaker) -> None:
        self.fmt = fmt
        self.owner = owner
        self.heard_until = 0.0
        """Monotonic time at which the last speech sample written so far will have been heard."""
        self.alert_heard_until = 0.0
        """The same for the alert's samples."""
        self.reply_heard_until = 0.0
        """The same for speech that is no earcon (a reply): the echo gate's long tail."""
        self.underruns = 0
        """Gaps inside a reply: the buffer ran dry and more of the reply came after."""
        self.underflows = 0
        """PortAudio output underflows: the device itself ran dry (audio came too late)."""
        self.longest_gap = 0.0
        """The longest wait between two blocks handed to the device while a sound played (s):
        how long the device had to cover from what it held (a stall longer than its buffer is
        an underflow)."""
        self.phase = Phase.RUNNING
        self._phase_lock = threading.Lock()
        self.closed = False
        """Closed (set under devices.LOCK): the stream must not be touched again."""
        self._blocked_since: float | None = None
        """When an abort, a start or a write began that has not returned yet (any thread)."""
        self._blocked_in = "stop"
        self.latency = owner.cfg.output_latency_ms / 1000
        self.stream: Any = None

    def _move(self, to: Phase, *, only_from: Phase | None = None) -> bool:
        """(Any thread) Move to `to`, which must be one of the moves _MOVES allows; with
        `only_from`, only from that phase (False if the phase is another by now: the loop and
        the stream's thread both move it)."""
        with self._phase_lock:
            if only_from is not None and self.phase is not only_from:
                return False
            if to is not self.phase and to not in _MOVES[self.phase]:
                raise AssertionError(f"speaker output: {self.phase.value} -> {to.value}")
            self.phase = to
            return True

    def _stamp(self, buf: PlaybackBuffer, alerting: bool, start: float, frames: int) -> None:
        """Frames taken from `buf` are heard from `start` on (monotonic): stamp the heard times."""
        heard = start + frames / self.fmt.rate
        if alerting:
            self.alert_heard_until = heard
            return
        self.heard_until = heard
        if buf.reply_end:
            self.reply_heard_until = start + buf.reply_end / self.fmt.rate

    def _forget_heard(self) -> None:
        """What was on its way to the DAC is gone (an abort)."""
        self.heard_until = self.alert_heard_until = self.reply_heard_until = 0.0

    def _stuck(self) -> str | None:
        blocked = self._blocked_since
        if blocked is not None and time.monotonic() - blocked > STUCK_S:
            return (
                f"output on {self.fmt.device.name!r} did not {self._blocked_in} within "
                f"{STUCK_S:.0f} s (the sound server or its driver does not answer)"
            )
        return None

    def _stalled(self, since: float) -> str:
        return (
            f"output on {self.fmt.device.name!r} stalled for {time.monotonic() - since:.1f} s "
            "(it takes no audio)"
        )

    def _gone(self) -> str:
        return f"output stream on {self.fmt.device.name!r} stopped (device unplugged or gone?)"

    def _abort(self, when: str) -> bool:
        """Stop the stream and drop what the device holds (devices.LOCK held); False (and
        FINISHED, for the supervisor to reopen) if it cannot."""
        self._blocked_in, self._blocked_since = "stop", time.monotonic()
        try:
            self.stream.abort()
        except Exception as exc:
            log.warning("speaker: cannot stop the output stream %s: %s", when, exc)
            self._move(Phase.FINISHED)
            return False
        finally:
            self._blocked_since = None
        self._forget_heard()
        return True

    def _start(self, when: str) -> bool:
        """Start the stopped stream (devices.LOCK held); False (and FINISHED) if it cannot."""
        self._blocked_in, self._blocked_since = "start", time.monotonic()
        try:
            self.stream.start()
        except Exception as exc:  # the supervisor reopens a stream that cannot restart
            log.warning("speaker: cannot start the output stream %s: %s", when, exc)
            self._move(Phase.FINISHED)
            return False
        finally:
            self._blocked_since = None
        return True

    def _open(self, **kwargs: Any) -> None:
        import sounddevice as sd

        fmt = self.fmt
        try:
            self.stream = sd.OutputStream(
                device=fmt.device.index,
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="float32",
                latency=self.latency,
                **kwargs,
            )
        except Exception as exc:
            raise devices.open_error(exc, fmt.device, Direction.OUTPUT) from exc
        devices.stream_opened()
        self.latency = float(self.stream.latency)
        try:
            self.stream.start()
        except Exception as exc:
            self._close_locked()
            raise devices.open_error(exc, fmt.device, Direction.OUTPUT) from exc

    def _close_locked(self) -> None:
        """(devices.LOCK held) A restart queued for later finds it closed and does nothing."""
        self.closed = True
        devices.close_stream(self.stream)


class WriterOutput(_Output):
    """A blocking output stream and the thread that writes the PlaybackBuffer into it."""

    def __init__(self, fmt: StreamFormat, block_ms: int, owner: Speaker) -> None:
        super().__init__(fmt, owner)
        frames = max(1, fmt.rate * block_ms // 1000)
        self._block = np.zeros((frames, fmt.channels), np.float32)
        self._wakeup = threading.Event()
        self._cut_asked = False
        """Set by the loop (a flush, the end of a ring); the writer drops the device buffer."""
        self._closing = False
        self._busy = False
        """The writer holds a block it took and has not written yet."""
        self._until = 0.0
        """Monotonic time at which the device will have played everything written to it."""
        self._dry_at: float | None = None
        """The buffer ran dry inside a reply: the device runs out at this time (then a gap)."""
        self.writes = 0
        """Blocks written so far."""
        self._streak = 0
        """Writes since the buffer last ran dry (or the device buffer was dropped)."""
        self._last_write_at = 0.0
        """When the latest write began."""
        self._waiting_since: float | None = None
        """When the writer began waiting for room that has not come yet (a stalled device)."""
        self._open(blocksize=frames)
        self._thread = threading.Thread(target=self._run, name="speaker-writer", daemon=True)
        self._thread.start()

    # --- the loop's side ------------------------------------------------------------------

    def wake(self) -> None:
        """Audio was queued (or a ring started): the writer takes it at once."""
        self._wakeup.set()

    def request_cut(self) -> None:
        """Drop what the device holds, as soon as the block being written is in."""
        if self._move(Phase.CUTTING, only_from=Phase.RUNNING):
            self._cut_asked = True
            self._wakeup.set()

    def flowing(self, prefill_s: float) -> bool:
        """Open, written as audio comes (nothing to wait for at start)."""
        return self.phase is not Phase.FINISHED and self._thread.is_alive()

    def progress(self) -> int:
        return 0

    def settled(self, mark: int) -> bool:
        """The block taken last is written (drain(): nothing left in the writer's hands)."""
        return not self._busy

    @property
    def ran_dry(self) -> bool:
        """The buffer ran dry inside a reply and the device has played out what it held."""
        dry_at = self._dry_at
        return dry_at is not None and time.monotonic() >= dry_at

    @ran_dry.setter
    def ran_dry(self, value: bool) -> None:
        if not value:
            self._dry_at = None

    def pause(self, still_idle: Callable[[], bool]) -> bool:
        return False  # idle, the writer writes nothing: there are no callbacks to stop

    def failure(self) -> str | None:
        stuck = self._stuck()
        if stuck is not None:
            if self._cut_asked and self._blocked_in == "play":  # a flush waits on that write
                return stuck.replace("did not play", "did not stop", 1)
            return stuck
        if self.phase is Phase.FINISHED or not self._thread.is_alive():
            return self._gone()
        waiting = self._waiting_since
        if waiting is not None and time.monotonic() - waiting > STALL_S:
            return self._stalled(waiting)
        return None

    def close(self) -> None:
        """The writer closes the stream as it leaves (a write under way must return first:
        closing under it is not safe): waited for briefly, as an idle writer leaves at once and
        a write takes a block; a writer stuck in PortAudio leaves when it returns."""
        self._closing = True
        self._wakeup.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_WAIT_S)

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wakeup.clear()  # before looking: a set() after the look wakes the wait
                if self._closing or self.phase is Phase.FINISHED:
                    break
                if self._cut_asked:
                    self._cut()
                elif not self._write_next() and not self._wakeup.wait(WRITER_IDLE_S):
                    self._room()  # idle: a device that went away is seen now, not at the next sound
        except Exception:  # component boundary: the supervisor reopens
            log.exception("speaker: the output writer failed")
            self._move(Phase.FINISHED)
        finally:
            with devices.LOCK:
                self._close_locked()

    def _write_next(self) -> bool:
        """Take a block and write it (unless a cut or a close comes first); False if there was
        nothing to take."""
        owner = self.owner
        buf, alerting = _source(owner)
        self._busy = True  # before the take: drain() must not see an empty buffer and no block
        try:
            generation = buf.generation
            n = buf.read_into(self._block[:, 0], owner.gain)
            if not n:
                if not alerting and owner.expect_more and self._dry_at is None and self._until:
                    self._dry_at = self._until
                self._streak = 0
                return False
            self._write(buf, alerting, n, generation)
            return True
        finally:
            self._busy = False

    def _room_for(self, n: int) -> bool:
        """Wait until the device buffer has room for `n` frames, so that the write does not
        block; False if a cut or a close came first, or the stream is gone. A write that
        blocked would make a flush wait for it (measured: interrupted -> silence 21.5 ms with
        blocking writes)."""
        try:
            while not (self._cut_asked or self._closing):
                room = self._room()
                if room < 0:
                    return False
                if room >= n:
                    return True
                if self._waiting_since is None:
                    self._waiting_since = time.monotonic()
                self._wakeup.clear()
                if self._cut_asked or self._closing:
                    break
                self._wakeup.wait((n - room) / self.fmt.rate)
            return False
        finally:
            self._waiting_since = None

    def _room(self) -> int:
        """Frames the device buffer has room for; -1 (and FINISHED) if the stream cannot say:
        the device or the sound server went away."""
        self._blocked_in, self._blocked_since = "play", time.monotonic()
        try:
            return int(self.stream.write_available)
        except Exception as exc:  # the supervisor reopens
            log.warning("speaker: the output stream does not answer: %s", exc)
            self._move(Phase.FINISHED)
            return -1
        finally:
            self._blocked_since = None

    def _write(self, buf: PlaybackBuffer, alerting: bool, n: int, generation: int) -> None:
        """Write the block taken from `buf` (at its `generation`) once there is room. A cut
        asked meanwhile is made first, and the block still written after it unless `buf` was
        flushed since it was taken (a ring's end: the speech taken as it ended goes on)."""
        block = self._block[:n]
        if block.shape[1] > 1:
            block[:, 1:] = block[:, :1]
        while not self._room_for(n):
            if self._closing or not self._cut_asked:
                return
            self._cut()
            if buf.generation != generation or self.phase is not Phase.RUNNING:
                return  # flushed: stale
        now = time.monotonic()
        streak = self._streak
        if streak and now - self._last_write_at > self.longest_gap:
            self.longest_gap = now - self._last_write_at  # a stall with audio waiting
        self._last_write_at = now
        self._dry_at = None
        start = max(self._until, now)
        self._blocked_in, self._blocked_since = "play", now
        try:
            underflowed = self.stream.write(block)
        except Exception as exc:  # the device went away: the supervisor reopens
            log.warning("speaker: cannot write to the output stream: %s", exc)
            self._move(Phase.FINISHED)
            return
        finally:
            self._blocked_since = None
        # PortAudio reports an underflow on the write after the one that found the device dry:
        # the first two writes after a dry spell report the spell itself, which is no fault.
        if underflowed and streak >= 2:
            self.underflows += 1
        self._streak = streak + 1
        self.writes += 1
        self._until = start + n / self.fmt.rate
        self._stamp(buf, alerting, start, n)

    def _cut(self) -> None:
        with devices.LOCK:
            self._cut_asked = False
            if self.closed or not self._abort("for a flush"):
                return
            self._until = 0.0
            self._dry_at = None
            self._streak = 0
            if self._start("after a flush"):
                self._move(Phase.RUNNING, only_from=Phase.CUTTING)


class CallbackOutput(_Output):
    """An output stream whose PortAudio callback drains the PlaybackBuffer (echo_mode "aec")."""

    PAUSES = True

    def __init__(self, fmt: StreamFormat, block_ms: int, owner: Speaker) -> None:
        super().__init__(fmt, owner)
        self.callbacks = 0
        self.ran_dry = False
        """The buffer ran dry while a reply was in progress (callback side): a gap if more of it
        comes, the reply's end if drain() or flush() comes first."""
        self._sounding_at = 0.0
        """Monotonic time of the latest callback if it played sound, else 0.0."""
        self.first_callback_at = 0.0
        self.last_callback_at = 0.0
        """Monotonic times of the first and the latest callback."""
        self._dry = True
        self._last_progress = time.monotonic()
        self._last_callbacks = 0
        self._open(
            blocksize=max(1, fmt.rate * block_ms // 1000),
            callback=self._callback(owner),
            finished_callback=self._finished,
        )

    def _callback(self, owner: Speaker) -> Callable[[Any, int, Any, Any], None]:
        """The PortAudio callback: plays the alert buffer while alerting, else speech."""
        rate = self.fmt.rate
        reference = owner.reference

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            dac = time_info.outputBufferDacTime
            current = time_info.currentTime
            ahead = min(max(dac - current, 0.0), 1.0) if dac else self.latency
            heard_at = monotonic_at(current) + ahead
            mono = outdata[:, 0]
            buf, alerting = _source(owner)
            n = buf.read_into(mono, owner.gain) if self.phase is Phase.RUNNING else 0
            if n < frames:
                mono[n:] = 0.0
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
                reference.put(heard_at, mono.copy(), rate)
            if n:
                self._stamp(buf, alerting, heard_at, n)
            self.last_callback_at = now
            if not self.callbacks:
                self.first_callback_at = self.last_callback_at
            self.callbacks += 1

        return callback

    def _finished(self) -> None:
        self._move(Phase.FINISHED, only_from=Phase.RUNNING)  # an abort by a cut is not the end

    # --- the loop's side ------------------------------------------------------------------

    def wake(self) -> None:
        """Start a paused stream again (off the loop); audio queued meanwhile plays once it runs."""
        if self.phase is not Phase.PAUSED:
            return
        try:
            asyncio.get_running_loop().run_in_executor(None, self.resume)
        except RuntimeError:  # no loop: this thread may block
            self.resume()

    def request_cut(self) -> None:
        """Silence the callback now and drop what the device holds (off the loop)."""
        if not self._move(Phase.CUTTING, only_from=Phase.RUNNING):
            return
        try:
            asyncio.get_running_loop().run_in_executor(None, self._cut)
        except RuntimeError:  # no loop: this thread may block
            self._cut()

    def flowing(self, prefill_s: float) -> bool:
        """PortAudio pulls audio in real time. At start it calls back a burst of times to
        pre-fill the device buffer, and then a new PulseAudio client can wait ~1.8 s before the
        next callback: audio queued in between (a wake chime) plays that much later, and the
        echo gate stays closed until it has. So the callbacks must have gone on for longer than
        that pre-fill burst (`prefill_s`)."""
        if not self.callbacks:
            return False
        if self.phase is Phase.PAUSED:
            return True  # it flowed before it was paused, and starts again when needed
        return self.last_callback_at - self.first_callback_at > prefill_s

    def progress(self) -> int:
        return self.callbacks

    def settled(self, mark: int) -> bool:
        """Two callbacks since `mark`: the one that took the last chunk has finished."""
        return self.callbacks >= mark + 2

    def _cut(self) -> None:
        """Off the loop: abort (drop the device buffer) and start again."""
        with devices.LOCK:
            if not self.closed and self._abort("for a flush"):
                if self.owner.reference is not None:
                    self.owner.reference.cut(time.monotonic())
                self._sounding_at = 0.0  # the wait until the next callback is no stall
                self._start_again("after a flush")

    def pause(self, still_idle: Callable[[], bool]) -> bool:
        """Off the loop: stop calling back while there is nothing to play (idle); False if a
        sound came meanwhile.

        The loop decided to pause a moment ago; a sound queued since then must not lose what
        the abort would drop. `still_idle` is asked again once the callback plays silence
        (PAUSED): play() queues before it wakes a PAUSED stream, so a sound queued after that
        second look restarts the stream and plays whole.
        """
        with devices.LOCK:
            if self.closed or not still_idle():
                return False
            # First: the callback plays silence, _finished ignores it.
            if not self._move(Phase.PAUSED, only_from=Phase.RUNNING):
                return False
            if not still_idle():
                self._move(Phase.RUNNING)
                return False
            if not self._abort("while idle"):
                return False
            self._sounding_at = 0.0
            return True

    def resume(self) -> None:
        """Off the loop: start a paused stream again (a no-op unless paused)."""
        with devices.LOCK:
            if not self.closed and self.phase is Phase.PAUSED:
                self._start_again("after an idle pause")

    def _start_again(self, when: str) -> None:
        """Start the stopped stream (devices.LOCK held): RUNNING, or FINISHED if it cannot."""
        if self._start(when):
            self._last_progress = time.monotonic()
            self._move(Phase.RUNNING)

    def failure(self) -> str | None:
        stuck = self._stuck()
        if stuck is not None:
            return stuck
        phase = self.phase
        if phase is Phase.CUTTING or phase is Phase.PAUSED or self._blocked_since is not None:
            return None  # a cut, a pause, or an abort or start under way (not stuck yet)
        if phase is Phase.FINISHED or (not self.stream.active and self.phase is Phase.RUNNING):
            return self._gone()
        now = time.monotonic()
        if self.callbacks != self._last_callbacks:
            self._last_callbacks = self.callbacks
            self._last_progress = now
        elif now - self._last_progress > STALL_S:
            return self._stalled(self._last_progress)
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


OutputStream = WriterOutput | CallbackOutput
