"""One conversation: a Live session with its tasks (mic→server, server→speaker, timers).

Started by the appliance when woken; cancelled by it to end (the session context closes the
connection and saves the resumption handle). Everything the conversation learns is posted back
to the appliance as an event; it never changes state itself, nor reads the appliance's: the
appliance tells it two facts (`observe`): whether it waits for the user to speak, and whether
audio may be streamed; it only sends microphone audio while that is so, which is what the LEDs
show.

Audio said while the session opens waits in the microphone's upload queue (the one buffer on the
upload path, drop-oldest beyond UPLOAD_MAX_BLOCKS): the uplink takes nothing from it until the
session is open, the wake chime decided and streaming allowed, then sends the pre-roll from the
wake word's end and everything queued, in order, before live audio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from device.app.memory import FailureMemory
from device.app.ports import BlockQueue, ConversationPort, Parts
from device.app.states import (
    AnswerPlayed,
    AnswerStarted,
    AppEvent,
    ConversationTimedOut,
    SessionFailed,
    SessionOpened,
    SilenceTimedOut,
)
from device.app.turns import TurnEvent, TurnPhase, step
from device.config import Config
from device.events import (
    MIC_RATE,
    AudioBlock,
    EndCause,
    ErrorKind,
    InputTranscribed,
    ModelAudio,
    Opened,
    OutputTranscribed,
    ServerInterrupted,
    SessionResumed,
    ToolCalled,
    TurnCompleted,
    TurnTranscribed,
    WakeDetected,
)
from device.tools import ToolExecutor

log = logging.getLogger(__name__)

UPLOAD_CONSUMER = "upload"
UPLOAD_MAX_BLOCKS = 1000
"""Up to 20 s of 20 ms blocks queued while the session opens (drop-oldest beyond)."""
VOICE_RMS = 500.0
"""Block RMS (int16) above which the user counts as speaking (keeps the silence timer away)."""
CHIME_LOOKAHEAD_S = 0.3
"""Audio after the wake word looked at before the chime: if the user keeps talking, no chime."""
TICK_S = 0.1
ANSWER_WAIT_S = 20.0
"""Once the server has heard the user (input transcript), silence does not end the conversation
while the answer is being prepared (tool calls, a slow network), for up to this long."""


class Host(Protocol):
    """The appliance as the conversation sees it (the facts it needs come by `observe`)."""

    def post_from(self, source: object, event: AppEvent) -> None:
        """Hand an event to the appliance (ignored once this conversation is over)."""
        ...

    def play_wake_chime(self) -> None:
        """Play the wake chime."""
        ...

    def turn_transcribed(self, turn: TurnTranscribed) -> None:
        """A turn's words, for the host's listeners (never logged: device.privacy)."""
        ...


def rms(pcm: bytes) -> float:
    """Root mean square of int16 samples."""
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


class Conversation:
    """A single conversation from wake-up to its end; `run()` is its task."""

    def __init__(
        self,
        cfg: Config,
        host: Host,
        parts: Parts,
        *,
        tools: ToolExecutor,
        memory: FailureMemory,
        wake: WakeDetected | None,
        opened: Opened,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._host = host
        self._live = parts.live
        self._speaker = parts.speaker
        self._preroll = parts.preroll
        self._gate = parts.upload_gate
        self._tools = tools
        self._memory = memory
        self._wake_end = wake.end if wake else None
        self._opened = opened
        self._clock = clock
        self._conv: ConversationPort | None = None
        self._listening = False
        """The appliance waits for the user to speak (told by observe): the silence timer runs."""
        self._streaming = asyncio.Event()
        """Set while the appliance allows microphone audio to be sent (the LEDs show it)."""
        self._opened_session = asyncio.Event()
        self._next_sample: int | None = None
        self._started = clock()
        self._listen_since: float | None = None
        self._last_voice = 0.0
        self._answered = False
        self._turn = 0
        self._after_answer: AppEvent | None = None
        self._first_seen: int | None = None
        self._decided = asyncio.Event()  # chime or not: pre-roll or not
        self._detected_at = self._fired_at(wake)
        # A wake-word barge-in: (wake word's end, where the detector fired) to send pre-roll from.
        self._backfill_from: tuple[int, int] | None = None
        self._phase = TurnPhase.QUIET
        """Where the current turn is (device.app.turns)."""
        self._tg: asyncio.TaskGroup | None = None
        self.sent_blocks = 0
        self.sent_samples = 0
        self.withheld_blocks = 0
        """Blocks the echo gate kept from the upload (the speaker was playing)."""

    def _post(self, event: AppEvent) -> None:
        self._host.post_from(self, event)

    # --- called by the appliance (loop thread) ---------------------------------------------

    def observe(self, listening: bool, streaming: bool) -> None:
        """Facts from the appliance, after each change of its state: whether it waits for the
        user to speak (LISTENING), and whether microphone audio may be streamed now."""
        self._listening = listening
        if streaming:
            self._streaming.set()
        else:
            self._streaming.clear()

    def _fired_at(self, wake: WakeDetected | None) -> int | None:
        """Where the detector fired (what the pre-roll holds, if the event does not say)."""
        if wake is not None and wake.fired_at is not None:
            return wake.fired_at
        return self._preroll.latest_end

    def barge_in(self, wake: WakeDetected | None = None) -> None:
        """Local barge-in (wake word, button): stop the answer and drop the rest of this turn.

        For a wake word, what the user says right after it ("Hey Jarvis, what about Spain?")
        was spoken while the speaker still played, so half duplex withheld it from the upload:
        it is sent from the pre-roll, from the wake word's end, before the next live block.
        """
        self._speaker.flush()
        # Drop the rest of the answer only if the server is still on it: after its turnComplete
        # nothing more of it comes, and the next audio is already the answer to the new question.
        self._phase = step(self._phase, TurnEvent.BARGE_IN)
        self._turn += 1
        if wake is not None:
            self._backfill_from = (wake.end, self._fired_at(wake) or wake.end)

    def ending(self, cause: EndCause) -> None:
        """The appliance is about to end this conversation, for this reason (for the ledger)."""
        if self._conv is not None:
            self._conv.ending(cause)

    def request_after_answer(self, event: AppEvent) -> None:
        """End or mute once the model's next answer (e.g. "Goodbye!") has played."""
        self._after_answer = event

    # --- the task -----------------------------------------------------------------------------

    async def run(self, upload: BlockQueue) -> None:
        """Open the session and run until cancelled or the session fails.

        `upload` is the microphone's upload consumer; the appliance owns it (adds it before and
        removes it when this conversation ends), so a conversation that is slow to close never
        holds the microphone against the next one.
        """
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._uplink(upload), name="uplink")
                tg.create_task(self._chime(), name="wake-chime")
                tg.create_task(self._timers(), name="conversation-timers")
                tg.create_task(self._session(), name="session")
        except* Exception as eg:
            self._failed(eg.exceptions[0])
        finally:
            log.info(
                "conversation over: %d blocks (%.1f s) of microphone audio sent, %d withheld "
                "while the speaker played",
                self.sent_blocks,
                self.sent_samples / MIC_RATE,
                self.withheld_blocks,
            )

    def upload_gate(self, block: AudioBlock) -> bool:
        """The upload consumer's gate: the echo gate, and where the live stream starts."""
        # The first block offered marks where the live stream starts: pre-roll fills up to it
        # (blocks the echo gate withholds, e.g. during the chime, are not taken from pre-roll).
        if self._first_seen is None:
            self._first_seen = block.start
        if self._gate is None or self._gate(block):
            return True
        self.withheld_blocks += 1
        return False

    def _failed(self, exc: BaseException) -> None:
        kind = getattr(exc, "kind", None)
        if not isinstance(kind, ErrorKind):
            log.error("conversation failed unexpectedly", exc_info=exc)
            kind = ErrorKind.SERVER
        message = str(getattr(exc, "message", "") or exc)
        self._memory.failed(kind, message, getattr(exc, "retry_after", None))
        self._post(SessionFailed(kind, message))

    async def _session(self) -> None:
        # The same gate again at the wire: audio held back in the session (a goAway handover)
        # leaves only if streaming is still allowed when its turn comes.
        note, keys = self._tools.news()  # timers that rang or were missed since the last one
        async with self._live.session(True, self._may_stream, self._opened, note) as conv:
            self._conv = conv
            self._opened_session.set()
            self._tools.told(keys)
            self._memory.succeeded()
            self._post(SessionOpened())
            await self._downlink(conv)
        raise _SessionEnded("the session ended")

    def _may_stream(self) -> bool:
        return self._streaming.is_set()

    async def _chime(self) -> None:
        """Chime unless the user is still talking right after the wake word (one breath).

        After a pause the pre-roll holds only the wake word's tail and silence: it is dropped
        (the server would take "...vis" for a question) and the upload starts from here.
        """
        if self._wake_end is not None:
            await asyncio.sleep(CHIME_LOOKAHEAD_S)
            after = self._preroll.take_from(max(self._wake_end, self._detected_at or 0))
            level = rms(b"".join(b.pcm for b in after))
            if level >= VOICE_RMS:
                log.info("speech continues after the wake word (rms %.0f): no chime", level)
                self._decided.set()
                return
            self._wake_end = None
        self._host.play_wake_chime()
        self._decided.set()

    # --- microphone -> server -------------------------------------------------------------------

    async def _uplink(self, upload: BlockQueue) -> None:
        # Nothing is taken from the queue until the session is open, the chime decided and
        # streaming allowed: what is said meanwhile waits there.
        await self._opened_session.wait()
        await self._decided.wait()
        await self._streaming.wait()
        await self._send_buffered(upload)
        while True:
            block = await upload.get()
            if not self._streaming.is_set():
                continue  # not streaming now (the answer plays): dropped, as the LEDs show
            if self._backfill_from is not None:
                await self._send_backfill(block)
            await self._send(block)

    async def _send_backfill(self, first_live: AudioBlock) -> None:
        """After a wake-word barge-in: the pre-roll from the wake word's end up to live audio,
        if the user went on talking after the wake word (else it holds only "...vis", which the
        server would take for a question: the same decision as the wake chime's)."""
        assert self._backfill_from is not None
        (wake_end, detected_at), self._backfill_from = self._backfill_from, None
        after = [b for b in self._preroll.take_from(detected_at) if b.start < first_live.start]
        if rms(b"".join(b.pcm for b in after)) < VOICE_RMS:
            return
        blocks = [b for b in self._preroll.take_from(wake_end) if b.start < first_live.start]
        log.info(
            "barge-in: sending %.2f s said after the wake word over the answer",
            sum(len(b.pcm) for b in blocks) / 2 / MIC_RATE,
        )
        await self._send_all(blocks)

    async def _send_buffered(self, upload: BlockQueue) -> None:
        """Pre-roll from the wake word's end, then what was queued while connecting, in order."""
        queued: list[AudioBlock] = []
        while True:
            try:
                queued.append(upload.get_nowait())
            except asyncio.QueueEmpty:
                break
        blocks: list[AudioBlock] = []
        if self._wake_end is not None:
            head = self._first_seen
            if head is None:
                head = queued[0].start if queued else self._preroll.latest_end
            if head is not None:
                blocks = [b for b in self._preroll.take_from(self._wake_end) if b.start < head]
        blocks += queued
        if blocks:
            log.info(
                "sending %.2f s of audio said while connecting",
                sum(len(b.pcm) for b in blocks) / 2 / MIC_RATE,
            )
        await self._send_all(blocks)

    async def _send_all(self, blocks: list[AudioBlock]) -> None:
        """Send in order; stop (and drop the rest) as soon as streaming is no longer allowed."""
        for i, b in enumerate(blocks):
            if not await self._send(b):
                log.info(
                    "streaming stopped while sending buffered audio: %d blocks not sent",
                    len(blocks) - i,
                )
                return

    async def _send(self, block: AudioBlock) -> bool:
        """Send one block if streaming is allowed at this moment (what the LEDs show).

        Every block passes this gate right before it goes to the session, buffered or live:
        a flush awaits the socket between blocks, and the state may change meanwhile.
        """
        assert self._conv is not None
        if not self._streaming.is_set():
            return False
        if self._next_sample is not None and block.start < self._next_sample:
            cut = self._next_sample - block.start
            if cut * 2 >= len(block.pcm):
                return True
            block = AudioBlock(block.pcm[cut * 2 :], self._next_sample)
        self._next_sample = block.end
        if rms(block.pcm) >= VOICE_RMS:
            self._last_voice = self._clock()
        await self._conv.send_audio(block.pcm)
        self.sent_blocks += 1
        self.sent_samples += len(block.pcm) // 2
        return True

    # --- server -> speaker ----------------------------------------------------------------------

    async def _downlink(self, conv: ConversationPort) -> None:
        heard: list[str] = []
        said: list[str] = []
        async for ev in conv.events():
            if isinstance(ev, ModelAudio):
                before, self._phase = self._phase, step(self._phase, TurnEvent.AUDIO)
                if self._phase is TurnPhase.DISCARDING:
                    continue
                if before is not TurnPhase.ANSWERING:  # this turn's first audio
                    self._post(AnswerStarted())
                self._answered = True
                self._speaker.play(ev.pcm)
            elif isinstance(ev, ServerInterrupted):
                self._phase = step(self._phase, TurnEvent.INTERRUPTED)
                self._turn += 1
                self._post(ev)
            elif isinstance(ev, TurnCompleted):
                discarded = self._phase is TurnPhase.DISCARDING
                self._phase = step(self._phase, TurnEvent.COMPLETED)
                self._turn_completed(ev, heard, said, discarded)
            elif isinstance(ev, InputTranscribed):
                self._last_voice = self._clock()
                self._phase = step(self._phase, TurnEvent.HEARD)
                heard.append(ev.text)
            elif isinstance(ev, OutputTranscribed):
                said.append(ev.text)
            elif isinstance(ev, ToolCalled):
                result = self._tools.run(ev.name, ev.args)
                await conv.send_tool_response(ev.id, ev.name, result)
            elif isinstance(ev, SessionResumed):
                log.info("session %s", "resumed" if ev.resumed else "started fresh")

    def _turn_completed(
        self, ev: TurnCompleted, heard: list[str], said: list[str], discarded: bool
    ) -> None:
        usage = ev.usage
        self._host.turn_transcribed(TurnTranscribed("".join(heard).strip(), "".join(said).strip()))
        log.info(
            "turn completed %.2f s into the conversation",
            self._clock() - self._started,
            extra={
                "TOTAL_TOKENS": usage.total_tokens if usage else 0,
                "TURN_S": round(self._clock() - self._started, 2),
            },
        )
        heard.clear()
        said.clear()
        if discarded:
            return
        if self._tg is not None:
            self._tg.create_task(self._playout(self._turn), name="playout")

    async def _playout(self, turn: int) -> None:
        await self._speaker.drain()
        if turn != self._turn:
            return  # barged in meanwhile
        self._post(AnswerPlayed())  # the table says what it means in the state of the moment
        if self._after_answer is not None:
            self._post(self._after_answer)

    # --- timers -------------------------------------------------------------------------------

    async def _timers(self) -> None:
        conv_cfg = self._cfg.conversation
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            if now - self._started >= conv_cfg.max_conversation_s:
                log.info("conversation reached max_conversation_s")
                self._post(ConversationTimedOut())
                return
            if not self._listening:
                self._listen_since = None
                continue
            if self._listen_since is None:
                self._listen_since = now
            window = conv_cfg.follow_up_s if self._answered else conv_cfg.no_speech_timeout_s
            if self._phase is TurnPhase.HEARD:
                window = max(window, ANSWER_WAIT_S)
            if now - max(self._listen_since, self._last_voice) >= window:
                self._post(SilenceTimedOut())
                return


class _SessionEnded(Exception):
    """The server ended the session while the conversation was still open."""

    kind = ErrorKind.SERVER
    message = "the server ended the session"
