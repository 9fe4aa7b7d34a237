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

The stream stays open for the daemon's life (reopening per reply clips reply starts). A small
device buffer (`audio.output_latency_ms`) sits behind an unbounded software one (the
PlaybackBuffer, filled by the loop). Which kind of stream plays it is device.audio.output's
concern: a writer thread on a blocking stream, which writes a sound into an empty device buffer
as it comes (heard from its first sample, with nothing ahead of it), or, with an echo canceller
(an EchoReference), PortAudio's callback, which tells the canceller when each block is heard
and is stopped while idle. flush() empties the software buffer and has the stream drop what the
device still holds (abort and start again, off the loop). Both record, on the monotonic clock,
when their last sample will have been heard, which is what `drain()` and `is_playing` use:
asking them costs no call into PortAudio. Underruns (the buffer ran dry inside a reply and the
device played out before more of it came) are counted; running dry at a reply's end, before the
server says it is complete, is none.

An alert (a timer's ring) has its own buffer and resampler. From start_alert() to stop_alert()
the output plays the alert buffer only: speech queued meanwhile (the rest of an answer, and
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
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from device.audio import alsa_log, devices, earcons
from device.audio.convert import SpeakerConverter
from device.audio.devices import Direction, StreamFormat
from device.audio.output import CallbackOutput, OutputStream, Phase, WriterOutput
from device.audio.playback import PlaybackBuffer
from device.audio.supervisor import DeviceSupervisor, EventSink, run_in_task
from device.audio.volume import VolumeStore, clamp, gain
from device.config import AudioConfig
from device.events import MODEL_RATE, ErrorKind

if TYPE_CHECKING:
    from device.audio.aec import EchoReference

log = logging.getLogger(__name__)


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
        """start_alert() .. stop_alert(): the output plays the alert buffer; speech waits."""
        self._volume = VolumeStore(state_dir, cfg.volume)
        self._level = self._volume.load()
        self._floor = 0
        """The least level played while a timer rings (hold_volume_floor); 0: none."""
        self._persist_lock = threading.Lock()
        self.gain = gain(self._level)
        """Linear gain the output applies (a float: replaced atomically)."""
        self.expect_more = False
        """A reply is in progress (set by play, cleared by drain/flush): a dry buffer, then more
        of the reply = an underrun."""
        self._hold = False
        """A conversation is on: the stream runs even with nothing to play (replies start at once)."""
        self._busy_at = time.monotonic()
        """Monotonic time the speaker last had something to do (idle pause counts from it)."""
        self._stream: OutputStream | None = None
        self._heard_until = 0.0
        self._reply_heard_until = 0.0
        self._converter: SpeakerConverter | None = None
        self._alert_converter: SpeakerConverter | None = None
        self.dropped_while_down = 0
        """24 kHz samples discarded because no output device was open."""
        self._past_underruns = self._past_underflows = 0
        self._past_longest_gap = 0.0
        """Counts (and the longest gap between blocks) of the streams opened before the current one."""
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
                "speaker: %d underruns, %d device underflows, blocks at most %.0f ms apart "
                "while playing%s",
                self.underruns,
                self.underflows,
                self.longest_block_gap * 1000,
                f"; alsa-lib messages left out: {alsa}" if alsa else "",
            )

    @contextlib.asynccontextmanager
    async def running(self, open_timeout_s: float = 15.0) -> AsyncIterator[Speaker]:
        """Run in a task; raises the open error if the first open fails."""
        async with run_in_task(self.run, self.supervisor, "speaker", open_timeout_s):
            yield self

    def _open(self) -> OutputStream:
        dev = devices.resolve(self.cfg.output_device, Direction.OUTPUT)
        fmt = devices.choose_format(dev, Direction.OUTPUT, self._rate, self._channels)
        self.buffer.flush()  # audio converted for a previous stream's rate must not play
        self.alert_buffer.flush()
        self._converter = SpeakerConverter(MODEL_RATE, fmt.rate)
        self._alert_converter = SpeakerConverter(MODEL_RATE, fmt.rate)
        kind = WriterOutput if self.reference is None else CallbackOutput
        stream: OutputStream = kind(fmt, self.cfg.output_block_ms, self)
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
                and stream.PAUSES
                and stream.phase is Phase.RUNNING
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
        """A conversation starts (True) or ends (False): a callback stream is not stopped as idle
        meanwhile (replies start at once)."""
        self._hold = on
        self._busy_at = time.monotonic()
        if on:
            self._wake()

    def _wake(self) -> None:
        """Audio was queued: the stream takes it (a paused one starts again, off the loop)."""
        if self._stream is not None:
            self._stream.wake()

    # --- playback -------------------------------------------------------------------------

    def play(self, pcm24k: bytes) -> None:
        """Queue model audio (24 kHz mono int16) behind what is already queued."""
        stream = self._stream
        dry = stream is not None and stream.ran_dry
        if stream is not None and dry:  # before queueing: the writer may take it (and run dry
            stream.ran_dry = False  # again) at once, and that dry spell must stand
        if self._queue(self.buffer, self._converter, pcm24k):
            self.expect_more = True
            if stream is not None and dry:  # more after the device played out: a gap
                stream.underruns += 1

    def _queue(
        self,
        buf: PlaybackBuffer,
        conv: SpeakerConverter | None,
        pcm24k: bytes,
        *,
        whole: bool = False,
        earcon: bool = False,
    ) -> bool:
        """Convert and queue; False (and counted as dropped) while no output device is open.
        `whole`: a
        complete sound, converted with the resampler's tail (else its last ~8 ms would wait in
        the resampler and come out ahead of the next sound: a blip before the next reply).
        `earcon`: a short sound, whose echo the echo gate waits out with its short tail."""
        if not self.supervisor.ready.is_set() or conv is None:
            self.dropped_while_down += len(pcm24k) // 2
            return False
        buf.push(conv.convert(pcm24k, last=whole), earcon=earcon)
        self._busy_at = time.monotonic()
        self._wake()
        return True

    def play_sound(self, pcm24k: bytes) -> None:
        """Queue a short sound (an earcon, 24 kHz mono int16): it plays as it comes and is no
        reply (a dry buffer after it is no underrun)."""
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
        audible = not self.alerting and self.speech_playing
        frames = self.buffer.flush()  # first: a block the output holds from before is stale
        if self._converter is not None:
            frames += self._converter.pending()
            self._converter.reset()
        if audible:
            self._cut(True)
        rate = self.format.rate if self.format else MODEL_RATE
        return frames / rate

    def _end_reply(self) -> None:
        """No more of this reply is coming: running dry now is its end, not an underrun."""
        self.expect_more = False
        if self._stream is not None:
            self._stream.ran_dry = False

    def _cut(self, audible: bool) -> None:
        """Have the stream drop what the device holds (off the loop)."""
        stream = self._stream
        self._keep_heard_until()  # the echo gate's tail counts from what was on its way
        if stream is not None and audible:
            stream.request_cut()

    # --- alerts (a ring) --------------------------------------------------------------------

    def start_alert(self) -> None:
        """From now the alert buffer plays instead of speech; speech keeps its place."""
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
        playing = self.is_playing
        self.alert_buffer.flush()  # first: a block of it the output holds is stale
        if self._alert_converter is not None:
            self._alert_converter.reset()
        # The device holds alert audio: dropped, not played out. The cut is asked before the
        # switch back to speech, so no speech is written ahead of it (and lost to it).
        self._cut(playing)
        self.alerting = False
        self._busy_at = time.monotonic()

    async def drain(self) -> None:
        """Return when everything queued has been played, i.e. its last sample has been heard."""
        conv = self._converter
        if conv is not None:
            self.buffer.push(conv.convert(b"", last=True))  # the resampler's tail
            self._wake()
        self._end_reply()
        seen: int | None = None
        while True:  # polled: the output's thread only counts and stamps times
            stream = self._stream
            if stream is None or not self.supervisor.ready.is_set():
                return
            if not self.buffer.is_empty():
                pass
            elif seen is None:
                # The block with the last chunk may still be on its way: let it be handed over.
                seen = stream.progress()
            elif stream.settled(seen) and stream.heard_until <= time.monotonic():
                return
            await asyncio.sleep(0.005)

    @property
    def flowing(self) -> bool:
        """The output stream is open and plays what is queued in real time (see the kinds'
        `flowing` in device.audio.output)."""
        stream = self._stream
        if stream is None or not self.supervisor.ready.is_set():
            return False
        return stream.flowing(stream.latency + self.cfg.output_block_ms / 1000)

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
    def longest_block_gap(self) -> float:
        """The longest wait between two blocks handed to the device while a sound played (s),
        over every stream opened so far: what a stall (the garbage collector, a busy CPU) left
        the device to cover."""
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
