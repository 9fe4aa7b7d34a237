"""One conversation: a Live session with its tasks (mic→server, server→speaker, timers).

Started by the appliance when woken; cancelled by it to end (the session context closes the
connection and saves the resumption handle). Everything the conversation learns is posted back
to the appliance as an event; it never changes state itself, nor reads the appliance's: the
appliance tells it two facts (`observe`): whether it waits for the user to speak, and whether
audio may be streamed; its uplink (device.app.uplink: the microphone -> session hop) only sends
microphone audio while that is so, which is what the LEDs show.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

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
from device.app.uplink import Uplink
from device.config import Config, ConversationConfig
from device.events import (
    MIC_RATE,
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

TICK_S = 0.1
ANSWER_WAIT_S = 20.0
"""Once the server has heard the user (input transcript), silence does not end the conversation
while the answer is being prepared (tool calls, a slow network), for up to this long."""


def silence_window(cfg: ConversationConfig, answered: bool, phase: TurnPhase) -> float:
    """How long the user may stay silent while the appliance listens before the conversation
    ends: the follow-up window after an answer, the first one before any; never less than
    ANSWER_WAIT_S once the server has heard a question it has not answered yet."""
    window = cfg.follow_up_s if answered else cfg.no_speech_timeout_s
    return max(window, ANSWER_WAIT_S) if phase is TurnPhase.HEARD else window


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
        self._tools = tools
        self._memory = memory
        self._opened = opened
        self._clock = clock
        self.uplink = Uplink(parts.preroll, parts.upload_gate, wake, clock)
        """Microphone -> session: what is sent, and when."""
        self._conv: ConversationPort | None = None
        self._opened_session = asyncio.Event()
        self._listening = False
        """The appliance waits for the user to speak (told by observe): the silence timer runs."""
        self._started = clock()
        self._listen_since: float | None = None
        self._last_heard = 0.0
        """When the server last transcribed the user (the silence timer counts from it too)."""
        self._answered = False
        self._turn = 0
        self._after_answer: AppEvent | None = None
        self._phase = TurnPhase.QUIET
        """Where the current turn is (device.app.turns)."""
        self._tg: asyncio.TaskGroup | None = None

    def _post(self, event: AppEvent) -> None:
        self._host.post_from(self, event)

    # --- called by the appliance (loop thread) ---------------------------------------------

    def observe(self, listening: bool, streaming: bool) -> None:
        """Facts from the appliance, after each change of its state: whether it waits for the
        user to speak (LISTENING), and whether microphone audio may be streamed now."""
        self._listening = listening
        self.uplink.allow(streaming)

    def barge_in(self, wake: WakeDetected | None = None) -> None:
        """Local barge-in (wake word, button): stop the answer and drop the rest of this turn.

        For a wake word, what the user said right after it goes up from the pre-roll
        (`Uplink.barge_in`).
        """
        self._speaker.flush()
        # Drop the rest of the answer only if the server is still on it: after its turnComplete
        # nothing more of it comes, and the next audio is already the answer to the new question.
        self._phase = step(self._phase, TurnEvent.BARGE_IN)
        self._turn += 1
        self.uplink.barge_in(wake)

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
                tg.create_task(self._send_audio(upload), name="uplink")
                tg.create_task(self.uplink.chime(self._host.play_wake_chime), name="wake-chime")
                tg.create_task(self._timers(), name="conversation-timers")
                tg.create_task(self._session(), name="session")
        except* Exception as eg:
            self._failed(eg.exceptions[0])
        finally:
            log.info(
                "conversation over: %d blocks (%.1f s) of microphone audio sent, %d withheld "
                "while the speaker played",
                self.uplink.sent_blocks,
                self.uplink.sent_samples / MIC_RATE,
                self.uplink.withheld_blocks,
            )

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
        return self.uplink.allowed

    async def _send_audio(self, upload: BlockQueue) -> None:
        async def send(pcm: bytes) -> None:
            assert self._conv is not None
            await self._conv.send_audio(pcm)

        await self.uplink.run(upload, self._opened_session, send)

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
                self._last_heard = self._clock()
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
            window = silence_window(conv_cfg, self._answered, self._phase)
            quiet_since = max(self._listen_since, self._last_heard, self.uplink.last_voice)
            if now - quiet_since >= window:
                self._post(SilenceTimedOut())
                return


class _SessionEnded(Exception):
    """The server ended the session while the conversation was still open."""

    kind = ErrorKind.SERVER
    message = "the server ended the session"
