"""The microphone: any device, any native rate and channel count -> 16 kHz mono blocks on asyncio.

    mic = Microphone(cfg.audio, on_event=events.put_nowait)
    wake = mic.add_consumer("wakeword", max_blocks=50)
    upload = mic.add_consumer("upload", max_blocks=50, gate=echo_gate)
    async with mic.running():              # opens (raises AudioDeviceError if it cannot) ...
        block = await wake.get()           # AudioBlock(pcm=16 kHz mono int16, start=sample index)
    # or: task = asyncio.create_task(mic.run(), name="microphone")  (retries forever)

The PortAudio callback only copies the bytes to the loop (`call_soon_threadsafe`), one block at a
time while something needs low latency (`low_latency(True)`: a conversation's upload) and
`IDLE_HAND_MS` at a time otherwise (the wake word scores 80 ms frames anyway: a quarter of the
loop wake-ups and conversions while idle); converting
(downmix + streaming soxr) and framing into `audio.block_ms` blocks happens on the loop. `start`
counts 16 kHz samples since the first open; after a reopen (device lost, or `run()` restarted
for mute) it jumps forward by the time nothing was captured, so it keeps tracking real time. Each consumer has
its own bounded drop-oldest queue; a gate decides per block whether that consumer gets it.
With an `EchoCanceller` (echo_mode "aec") every block is cancelled before it is fanned out, at
the monotonic time its first sample was captured (PortAudio's time info, kept by a SampleClock),
once the canceller is trusted (EchoCanceller.learned: before that it learns and the raw blocks
go on); a cancelled block also carries what was captured (`AudioBlock.uncancelled`), which the
wake word listens to as well while the speaker plays (device.wakeword.detector).
Overflows (PortAudio's and the queues') are counted and summarised in the log every
`summary_interval_s`, never logged per block. `progress` feeds the systemd watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from device.audio import devices
from device.audio.aec import SampleClock
from device.audio.convert import BlockFramer, MicConverter
from device.audio.devices import Direction, StreamFormat
from device.audio.queues import DropOldestQueue
from device.audio.stream_time import monotonic_at
from device.audio.supervisor import DeviceSupervisor, EventSink, run_in_task
from device.config import AudioConfig
from device.events import MIC_RATE, AudioBlock

if TYPE_CHECKING:
    from device.audio.aec import EchoCanceller

log = logging.getLogger(__name__)

Gate = Callable[[AudioBlock], bool]
IDLE_HAND_MS = 80
"""Audio gathered per hand-over to the loop while nothing needs low latency."""
STARTUP_GRACE_S = 10.0
"""How long a freshly opened input may stay silent before it counts as stalled."""


@dataclass(frozen=True, slots=True)
class MicProgress:
    """How far the microphone has got (for the watchdog): blocks delivered, when the last one was."""

    blocks: int
    last_block_monotonic: float | None


Sink = Callable[[AudioBlock], None]


@dataclass(slots=True)
class _Consumer:
    queue: DropOldestQueue[AudioBlock] | None
    """Where blocks go, or (None) they are handed to `sink` at once on the loop."""
    gate: Gate | None
    sink: Sink | None = None
    reported_drops: int = 0


class _InputStream:
    """One open PortAudio input stream; the callback hands bytes to the loop and nothing else."""

    def __init__(
        self,
        fmt: StreamFormat,
        *,
        block_ms: int,
        loop: asyncio.AbstractEventLoop,
        on_raw: Callable[[int, bytes, bool, float], None],
        generation: int,
        stall_s: float,
    ) -> None:
        import sounddevice as sd

        self.fmt = fmt
        self.stall_s = stall_s
        self.last_data = time.monotonic()
        self.had_data = False
        self._finished = False

        self.hand_every = 1
        """Blocks gathered per hand-over to the loop (set from the loop: an int, read atomically)."""
        pending: list[bytes] = []
        flagged = False
        captured_at = 0.0

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            nonlocal flagged, captured_at
            if not pending:  # the monotonic time the first sample of this hand-over was captured
                adc = time_info.inputBufferAdcTime
                current = time_info.currentTime
                age = current - adc if adc else frames / fmt.rate
                captured_at = monotonic_at(current) - min(max(age, 0.0), 1.0)
            pending.append(bytes(indata))
            flagged = flagged or bool(status)
            if len(pending) < self.hand_every:
                return
            raw = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            overflowed, flagged = flagged, False
            with contextlib.suppress(RuntimeError):  # RuntimeError: loop closed at shutdown
                loop.call_soon_threadsafe(on_raw, generation, raw, overflowed, captured_at)

        def finished() -> None:
            self._finished = True

        try:
            self.stream = sd.RawInputStream(
                device=fmt.device.index,
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="int16",
                blocksize=max(1, fmt.rate * block_ms // 1000),
                callback=callback,
                finished_callback=finished,
            )
        except Exception as exc:
            raise devices.open_error(exc, fmt.device, Direction.INPUT) from exc
        devices.stream_opened()

    def start(self) -> None:
        try:
            self.stream.start()
        except Exception as exc:
            self.close()
            raise devices.open_error(exc, self.fmt.device, Direction.INPUT) from exc
        self.last_data = time.monotonic()

    def failure(self) -> str | None:
        if self._finished or not self.stream.active:
            return f"input stream on {self.fmt.device.name!r} stopped (device unplugged or gone?)"
        silent = time.monotonic() - self.last_data
        # A new PulseAudio client can take seconds before its first data: allow more at start.
        limit = self.stall_s if self.had_data else max(self.stall_s, STARTUP_GRACE_S)
        if silent > limit:
            return f"no audio from {self.fmt.device.name!r} for {silent:.1f} s"
        return None

    def close(self) -> None:
        devices.close_stream(self.stream)


class Microphone:
    """16 kHz mono AudioBlocks from the configured input device, fanned out to named consumers."""

    def __init__(
        self,
        cfg: AudioConfig,
        *,
        on_event: EventSink | None = None,
        rate: int | None = None,
        channels: int | None = None,
        stall_s: float = 3.0,
        summary_interval_s: float = 60.0,
        canceller: EchoCanceller | None = None,
    ) -> None:
        """rate/channels force an opening format (None: the device's own); `canceller` removes
        the speaker's echo from every block (echo_mode "aec")."""
        self.cfg = cfg
        self._rate = rate
        self._channels = channels
        self._stall_s = stall_s
        self._summary_interval_s = summary_interval_s
        self._consumers: dict[str, _Consumer] = {}
        self._framer = BlockFramer(MIC_RATE * cfg.block_ms // 1000)
        self._converter: MicConverter | None = None
        self._stream: _InputStream | None = None
        self._generation = 0
        self._framed_generation = 0
        self._blocks = 0
        self._last_block: float | None = None
        self._overflows = 0
        self._reported_overflows = 0
        self._last_summary = time.monotonic()
        self.format: StreamFormat | None = None
        """The format of the open (or last opened) stream."""
        self._low_latency = False
        self.canceller = canceller
        self._clock = SampleClock(MIC_RATE)
        """When each 16 kHz sample was captured (monotonic), for the echo canceller."""
        self.supervisor = DeviceSupervisor(Direction.INPUT, self._open, on_event)

    # --- consumers ------------------------------------------------------------------------

    def add_consumer(
        self, name: str, max_blocks: int, gate: Gate | None = None
    ) -> DropOldestQueue[AudioBlock]:
        """A new bounded queue that receives every block (for which `gate(block)` is true)."""
        if name in self._consumers:
            raise ValueError(f"consumer {name!r} already exists")
        q: DropOldestQueue[AudioBlock] = DropOldestQueue(max_blocks, name)
        self._consumers[name] = _Consumer(q, gate)
        return q

    def add_sink(self, name: str, sink: Sink, gate: Gate | None = None) -> None:
        """Call `sink(block)` on the loop with every block (for which `gate(block)` is true), as
        it is framed: for a consumer that keeps its own bounded buffer (the wake word)."""
        if name in self._consumers:
            raise ValueError(f"consumer {name!r} already exists")
        self._consumers[name] = _Consumer(None, gate, sink)

    def remove_consumer(self, name: str) -> None:
        """Stop delivering to a consumer."""
        self._consumers.pop(name, None)

    def low_latency(self, on: bool) -> None:
        """Hand each block over as soon as it is captured (a conversation's upload), or gather
        `IDLE_HAND_MS` of audio per hand-over (only the wake word listens)."""
        self._low_latency = on
        if self._stream is not None:
            self._stream.hand_every = self._hand_every()

    def _hand_every(self) -> int:
        return 1 if self._low_latency else max(1, IDLE_HAND_MS // self.cfg.block_ms)

    @property
    def progress(self) -> MicProgress:
        """Blocks delivered so far and the monotonic time of the last one."""
        return MicProgress(self._blocks, self._last_block)

    @property
    def flowing(self) -> bool:
        """The input stream is open and has delivered audio."""
        stream = self._stream
        return stream is not None and self.supervisor.ready.is_set() and stream.had_data

    @property
    def clock_reanchors(self) -> int:
        """Times the capture timeline jumped to a report (a gap, or a clock it did not follow)."""
        return self._clock.reanchors

    def captured_at(self, block: AudioBlock) -> float:
        """The monotonic time the block's first sample was captured (PortAudio's time info)."""
        return self._clock.time_of(block.start)

    @property
    def position(self) -> int:
        """Sample index (16 kHz) that the next block will start at."""
        return self._framer.position

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the microphone open until cancelled (reopens with backoff on failures)."""
        self._loop = asyncio.get_running_loop()
        try:
            await self.supervisor.run()
        finally:
            self._summarise(final=True)

    @contextlib.asynccontextmanager
    async def running(self, open_timeout_s: float = 15.0) -> AsyncIterator[Microphone]:
        """Run in a task; raises the open error if the first open fails."""
        async with run_in_task(self.run, self.supervisor, "microphone", open_timeout_s):
            yield self

    def _open(self) -> _InputStream:
        dev = devices.resolve(self.cfg.input_device, Direction.INPUT)
        fmt = devices.choose_format(dev, Direction.INPUT, self._rate, self._channels)
        stream = _InputStream(
            fmt,
            block_ms=self.cfg.block_ms,
            loop=self._loop,
            on_raw=self._on_raw,
            generation=self._generation + 1,
            stall_s=self._stall_s,
        )
        self._stream = stream
        self.format = fmt
        self._converter = MicConverter(fmt.rate, fmt.channels)
        self._generation += 1
        stream.hand_every = self._hand_every()
        stream.start()
        log.info(
            "microphone open: %s at %d Hz, %d channel(s)", dev.describe(), fmt.rate, fmt.channels
        )
        return stream

    # --- the loop side of the bridge ------------------------------------------------------

    def _on_raw(self, generation: int, raw: bytes, overflowed: bool, captured_at: float) -> None:
        stream = self._stream
        if generation != self._generation or stream is None or self._converter is None:
            return  # late data from a stream that has been replaced
        now = time.monotonic()
        if generation != self._framed_generation:
            self._framed_generation = generation
            fmt = stream.fmt
            self._skip_gap(now, len(raw) / (2 * fmt.channels * fmt.rate))
        stream.last_data = now
        stream.had_data = True
        if overflowed:
            self._overflows += 1
        # Where this chunk's first sample lands on the 16 kHz timeline: after the samples still
        # in the framer and those the resampler holds back.
        self._clock.report(
            self._framer.position + self._framer.pending + self._converter.delay(), captured_at
        )
        canceller = self.canceller
        for block in self._framer.feed(self._converter.convert(raw)):
            if canceller is not None:
                # It always learns; its output is used once it is trusted with the upload (until
                # then the raw signal goes on, gated as in half duplex: a cold canceller's output
                # can lose the start of what the user says).
                cancelled = canceller.process(block, self._clock.time_of(block.start))
                if canceller.learned():
                    block = cancelled  # noqa: PLW2901
            self._blocks += 1
            self._last_block = now
            for consumer in self._consumers.values():
                if consumer.gate is None or consumer.gate(block):
                    if consumer.queue is not None:
                        consumer.queue.put_nowait(block)
                    elif consumer.sink is not None:
                        consumer.sink(block)
        if now - self._last_summary >= self._summary_interval_s:
            self._summarise()

    def _skip_gap(self, now: float, chunk_s: float) -> None:
        """After a reopen (or mute), move `start` on by the time nothing was captured (the
        first chunk, `chunk_s` long, ended now; the last one before ended at `_last_block`)."""
        if self._last_block is None:
            return
        gap = now - self._last_block - chunk_s
        if gap > 0:
            self._framer.skip(round(gap * MIC_RATE))

    def _summarise(self, final: bool = False) -> None:
        self._last_summary = time.monotonic()
        parts = []
        if self._overflows > self._reported_overflows:
            parts.append(f"{self._overflows - self._reported_overflows} input overflows")
            self._reported_overflows = self._overflows
        for c in self._consumers.values():
            if c.queue is not None and c.queue.dropped > c.reported_drops:
                parts.append(
                    f"{c.queue.dropped - c.reported_drops} blocks dropped by {c.queue.name}"
                )
                c.reported_drops = c.queue.dropped
        if parts:
            log.warning("microphone: %s (%d blocks so far)", "; ".join(parts), self._blocks)
        elif final:
            log.info("microphone: %d blocks delivered, no overflows", self._blocks)
