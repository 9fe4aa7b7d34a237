"""Microphone -> session: the one hop that sends the user's voice, owned by one conversation.

    uplink = Uplink(parts.preroll, parts.upload_gate, wake)
    upload = mic.add_consumer(UPLOAD_CONSUMER, UPLOAD_MAX_BLOCKS, gate=uplink.gate)
    uplink.allow(appliance.streaming)        # after every change of the appliance's state
    await uplink.run(upload, session_open, conv.send_audio)

One buffer: the microphone's upload queue (drop-oldest beyond UPLOAD_MAX_BLOCKS). Two questions
asked of every block, each with one owner:
- does it carry the speaker's echo? The echo gate (device.audio.echo), when the block is queued;
- may the user be heard now? `allow()`, told by the appliance, the same fact its LEDs show;
  asked again right before each block goes to the session, buffered or live.

Audio said while the session opens waits in the queue: nothing is taken from it until the session
is open, the wake chime decided and streaming allowed; then the pre-roll from the wake word's end
(if the user went on talking in one breath) and everything queued go first, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import numpy as np

from device.app.ports import BlockQueue, Gate, PreRollPort
from device.events import MIC_RATE, AudioBlock, WakeDetected

log = logging.getLogger(__name__)

UPLOAD_CONSUMER = "upload"
UPLOAD_MAX_BLOCKS = 1000
"""Up to 20 s of 20 ms blocks queued while the session opens (drop-oldest beyond)."""
VOICE_RMS = 500.0
"""Block RMS (int16) above which the user counts as speaking (keeps the silence timer away)."""
CHIME_LOOKAHEAD_S = 0.3
"""Audio after the wake word looked at before the chime: if the user keeps talking, no chime."""

Send = Callable[[bytes], Awaitable[None]]


def rms(pcm: bytes) -> float:
    """Root mean square of int16 samples."""
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


# --- the splice, as pure functions ---------------------------------------------------------------


def voiced(blocks: Sequence[AudioBlock]) -> bool:
    """Whether the blocks, together, are loud enough to be the user still talking."""
    return rms(b"".join(b.pcm for b in blocks)) >= VOICE_RMS


def before(blocks: Iterable[AudioBlock], end: int) -> list[AudioBlock]:
    """The blocks that start before sample `end` (pre-roll up to where queued or live audio
    begins)."""
    return [b for b in blocks if b.start < end]


def live_start(
    first_seen: int | None, queued: Sequence[AudioBlock], latest: int | None
) -> int | None:
    """Where the queue's audio begins, for the pre-roll to stop at: the first block offered to
    the queue (even one the echo gate withheld), else the first queued, else the pre-roll's end."""
    if first_seen is not None:
        return first_seen
    return queued[0].start if queued else latest


def unsent(block: AudioBlock, next_sample: int | None) -> AudioBlock | None:
    """What of `block` was not sent yet when everything before `next_sample` was: the whole
    block, its tail, or None (pre-roll and queue may overlap by a block)."""
    if next_sample is None or block.start >= next_sample:
        return block
    cut = next_sample - block.start
    if cut * 2 >= len(block.pcm):
        return None
    return AudioBlock(block.pcm[cut * 2 :], next_sample)


class Uplink:
    """What one conversation sends to the session, and when."""

    def __init__(
        self,
        preroll: PreRollPort,
        echo_gate: Gate | None,
        wake: WakeDetected | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._preroll = preroll
        self._echo_gate = echo_gate
        self._clock = clock
        self._wake_end = wake.end if wake else None
        self._detected_at = self._fired_at(wake)
        self._allowed = asyncio.Event()
        """Set while the appliance allows microphone audio to be sent (the LEDs show it)."""
        self._decided = asyncio.Event()  # chime or not: pre-roll or not
        self._first_seen: int | None = None
        """Where the live stream starts: the first block offered to the queue."""
        self._next_sample: int | None = None
        # A wake-word barge-in: (wake word's end, where the detector fired) to send pre-roll from.
        self._backfill_from: tuple[int, int] | None = None
        self.last_voice = 0.0
        """Monotonic time the last block loud enough to be the user's voice was sent."""
        self.sent_blocks = 0
        self.sent_samples = 0
        self.withheld_blocks = 0
        """Blocks the echo gate kept from the upload (the speaker was playing)."""

    def _fired_at(self, wake: WakeDetected | None) -> int | None:
        """Where the detector fired (what the pre-roll holds, if the event does not say)."""
        if wake is not None and wake.fired_at is not None:
            return wake.fired_at
        return self._preroll.latest_end

    # --- facts from the conversation's owner (loop thread) --------------------------------------

    def allow(self, streaming: bool) -> None:
        """Whether microphone audio may be sent now (the appliance's fact, as the LEDs show)."""
        if streaming:
            self._allowed.set()
        else:
            self._allowed.clear()

    @property
    def allowed(self) -> bool:
        return self._allowed.is_set()

    def barge_in(self, wake: WakeDetected | None) -> None:
        """A local barge-in. For a wake word, what the user says right after it ("Hey Jarvis,
        what about Spain?") was spoken while the speaker still played, so half duplex withheld
        it from the queue: it is sent from the pre-roll, from the wake word's end, before the
        next live block."""
        if wake is not None:
            self._backfill_from = (wake.end, self._fired_at(wake) or wake.end)

    def gate(self, block: AudioBlock) -> bool:
        """The upload queue's gate: the echo gate, and where the live stream starts."""
        # The first block offered marks where the live stream starts: pre-roll fills up to it
        # (blocks the echo gate withholds, e.g. during the chime, are not taken from pre-roll).
        if self._first_seen is None:
            self._first_seen = block.start
        if self._echo_gate is None or self._echo_gate(block):
            return True
        self.withheld_blocks += 1
        return False

    # --- tasks ------------------------------------------------------------------------------------

    async def chime(self, play_chime: Callable[[], None]) -> None:
        """Chime unless the user is still talking right after the wake word (one breath).

        After a pause the pre-roll holds only the wake word's tail and silence: it is dropped
        (the server would take "...vis" for a question) and the upload starts from here.
        """
        if self._wake_end is not None:
            await asyncio.sleep(CHIME_LOOKAHEAD_S)
            if voiced(self._preroll.take_from(max(self._wake_end, self._detected_at or 0))):
                log.info("speech continues after the wake word: no chime")
                self._decided.set()
                return
            self._wake_end = None
        play_chime()
        self._decided.set()

    async def run(self, upload: BlockQueue, session_open: asyncio.Event, send: Send) -> None:
        """Send until cancelled. Nothing is taken from the queue until the session is open, the
        chime decided and streaming allowed: what is said meanwhile waits there."""
        await session_open.wait()
        await self._decided.wait()
        await self._allowed.wait()
        await self._send_buffered(upload, send)
        while True:
            block = await upload.get()
            if not self._allowed.is_set():
                continue  # not streaming now (the answer plays): dropped, as the LEDs show
            if self._backfill_from is not None:
                await self._send_backfill(block, send)
            await self._send(block, send)

    async def _send_backfill(self, first_live: AudioBlock, send: Send) -> None:
        """After a wake-word barge-in: the pre-roll from the wake word's end up to live audio,
        if the user went on talking after the wake word (else it holds only "...vis", which the
        server would take for a question: the same decision as the wake chime's)."""
        assert self._backfill_from is not None
        (wake_end, detected_at), self._backfill_from = self._backfill_from, None
        if not voiced(before(self._preroll.take_from(detected_at), first_live.start)):
            return
        blocks = before(self._preroll.take_from(wake_end), first_live.start)
        log.info(
            "barge-in: sending %.2f s said after the wake word over the answer",
            sum(len(b.pcm) for b in blocks) / 2 / MIC_RATE,
        )
        await self._send_all(blocks, send)

    async def _send_buffered(self, upload: BlockQueue, send: Send) -> None:
        """Pre-roll from the wake word's end, then what was queued while connecting, in order."""
        queued: list[AudioBlock] = []
        while True:
            try:
                queued.append(upload.get_nowait())
            except asyncio.QueueEmpty:
                break
        blocks: list[AudioBlock] = []
        if self._wake_end is not None:
            head = live_start(self._first_seen, queued, self._preroll.latest_end)
            if head is not None:
                blocks = before(self._preroll.take_from(self._wake_end), head)
        blocks += queued
        if blocks:
            log.info(
                "sending %.2f s of audio said while connecting",
                sum(len(b.pcm) for b in blocks) / 2 / MIC_RATE,
            )
        await self._send_all(blocks, send)

    async def _send_all(self, blocks: list[AudioBlock], send: Send) -> None:
        """Send in order; stop (and drop the rest) as soon as streaming is no longer allowed."""
        for i, b in enumerate(blocks):
            if not await self._send(b, send):
                log.info(
                    "streaming stopped while sending buffered audio: %d blocks not sent",
                    len(blocks) - i,
                )
                return

    async def _send(self, block: AudioBlock, send: Send) -> bool:
        """Send one block if streaming is allowed at this moment (what the LEDs show).

        Every block passes this gate right before it goes to the session, buffered or live:
        a flush awaits the socket between blocks, and the state may change meanwhile.
        """
        if not self._allowed.is_set():
            return False
        part = unsent(block, self._next_sample)
        if part is None:
            return True
        block = part
        self._next_sample = block.end
        if rms(block.pcm) >= VOICE_RMS:
            self.last_voice = self._clock()
        await send(block.pcm)
        self.sent_blocks += 1
        self.sent_samples += len(block.pcm) // 2
        return True
