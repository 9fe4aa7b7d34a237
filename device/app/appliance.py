"""The orchestrator: feeds every event through the transition table and carries out the actions.

One dispatcher task takes events in order from a queue (wake word, button, the conversation's own
findings, audio device failures); `device.app.states.step()` decides; this module does the I/O:
LEDs, earcons, the microphone (mute), the speaker (barge-in), the ring of timers and alarms
(device.timers.ringer) and the conversation task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from device.app.conversation import Conversation
from device.app.memory import FailureMemory, MuteStore
from device.app.ports import Parts
from device.app.states import (
    Action,
    AnswerPlayed,
    AppEvent,
    ConversationTimedOut,
    EndRequested,
    ErrorShown,
    MuteRequested,
    RingTimedOut,
    SessionFailed,
    SilenceTimedOut,
    Started,
    StartedMuted,
    State,
    Status,
    Step,
    Stopping,
    log_step,
    step,
)
from device.app.uplink import UPLOAD_CONSUMER, UPLOAD_MAX_BLOCKS
from device.audio import earcons
from device.config import Config
from device.events import (
    AudioDeviceFailed,
    ButtonHeld,
    ButtonReleased,
    EndCause,
    ErrorKind,
    Opened,
    ServerInterrupted,
    TimerRang,
    Trigger,
    TurnTranscribed,
    WakeDetected,
)
from device.timers.book import TimerBook
from device.timers.ringer import Ringer
from device.timers.tools import TimerTools
from device.tools import ToolExecutor

log = logging.getLogger(__name__)

ERROR_SHOW_S = 3.0
"""How long the error pattern stays before going back to idle."""
END_TIMEOUT_S = 1.5
"""How long the end of a conversation waits for its session to close (and save its handle).
Past that the conversation finishes closing on its own (bounded in device.live): the next
wake-up does not wait for it."""


END_CAUSES: dict[type, EndCause] = {
    SilenceTimedOut: EndCause.SILENCE,
    ConversationTimedOut: EndCause.TIME_LIMIT,
    ButtonReleased: EndCause.BUTTON,
    EndRequested: EndCause.ASKED,
    ButtonHeld: EndCause.MUTED,
    MuteRequested: EndCause.MUTED,
    SessionFailed: EndCause.ERROR,
    AudioDeviceFailed: EndCause.ERROR,
    Stopping: EndCause.SHUTDOWN,
    TimerRang: EndCause.TIMER,
    # Over a paused answer (RINGING_OVER_ANSWER) these end it under the ring:
    AnswerPlayed: EndCause.TIMER,
    ServerInterrupted: EndCause.TIMER,
    RingTimedOut: EndCause.TIMER,
}
"""The event that ended a conversation -> the cause the upload ledger records."""

_SPEAKER_BUSY = frozenset({State.RESPONDING, State.RINGING, State.RINGING_OVER_ANSWER})
"""States in which the wake word needs its barge-in threshold (the speaker is loud)."""
_RINGING_UNMUTED = frozenset({State.RINGING, State.RINGING_OVER_ANSWER})
"""States in which "stop" is listened for."""

StatusListener = Callable[[Status], None]
TurnListener = Callable[[TurnTranscribed], None]


class Appliance:
    """The smart speaker's behaviour; `run()` is the task, `post()` feeds it events."""

    def __init__(
        self,
        cfg: Config,
        parts: Parts,
        *,
        on_status: StatusListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        timers: TimerBook | None = None,
    ) -> None:
        self._cfg = cfg
        self._p = parts
        self._listeners: list[StatusListener] = [on_status] if on_status else []
        self._turn_listeners: list[TurnListener] = []
        self._clock = clock
        self._status = Status(State.STARTING)
        self._events: asyncio.Queue[tuple[AppEvent, object]] = asyncio.Queue()
        self._conversation: Conversation | None = None
        self._conv_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        """Ended conversations still closing their session (bounded; watched, never awaited)."""
        self._error_timer: asyncio.TimerHandle | None = None
        self._mute_store = MuteStore(cfg.state_dir)
        self.memory = FailureMemory(cfg.live, clock)
        self.timers = timers or TimerBook(cfg.state_dir, grace_s=cfg.timers.grace_s)
        """Pending timers and alarms (the daemon runs device.timers.scheduler on it)."""
        self.tools = ToolExecutor(self, TimerTools(self.timers))
        self.ringer = Ringer(parts.speaker, cfg.timers.volume_floor)
        self._ring_limit: asyncio.TimerHandle | None = None
        self._stopped = asyncio.Event()

    # --- what others read ---------------------------------------------------------------------

    @property
    def status(self) -> Status:
        """Current state (and error kind)."""
        return self._status

    @property
    def state(self) -> State:
        """Current state."""
        return self._status.state

    @property
    def streaming(self) -> bool:
        """Whether microphone audio may be sent now; the LEDs show listening whenever it is."""
        if self.state is State.LISTENING:
            return True
        if self.state is not State.RESPONDING:
            return False
        if self._p.talks_over is not None:
            return self._p.talks_over()
        return self._cfg.audio.echo_mode.streams_while_playing

    @property
    def saved_muted(self) -> bool:
        """Mute as persisted in state_dir (the daemon keeps the mic closed at start if so)."""
        return self._mute_store.load()

    def add_listener(self, listener: StatusListener) -> None:
        """Also call listener(status) after every change (LEDs already updated)."""
        self._listeners.append(listener)

    def add_turn_listener(self, listener: TurnListener) -> None:
        """Also call listener(turn) with each finished turn's words (the demo prints them)."""
        self._turn_listeners.append(listener)

    def turn_transcribed(self, turn: TurnTranscribed) -> None:
        """Called by the conversation: hand a turn's words to the turn listeners."""
        for listener in self._turn_listeners:
            listener(turn)

    # --- input --------------------------------------------------------------------------------

    def post(self, event: AppEvent) -> None:
        """Queue an event (loop thread only; foreign threads use loop.call_soon_threadsafe)."""
        self._events.put_nowait((event, None))

    def post_from(self, source: object, event: AppEvent) -> None:
        """Queue an event from a conversation; dropped if that conversation is over by then."""
        self._events.put_nowait((event, source))

    def started(self, muted: bool) -> None:
        """The daemon has the mic open (or closed for mute) and the wake model loaded."""
        self.post(StartedMuted() if muted else Started())

    async def run(self) -> None:
        """Dispatch events until stop()."""
        self._render()
        while True:
            event, source = await self._events.get()
            if source is not None and source is not self._conversation:
                log.debug("dropped %s from a conversation that has ended", type(event).__name__)
                continue
            try:
                await self._dispatch(event)
            except Exception:
                log.exception("handling %s failed", type(event).__name__)
            if isinstance(event, Stopping):
                self._stopped.set()
                return

    async def stop(self, limit_s: float = 2.0) -> None:
        """End any conversation (session closed, handle saved), LEDs off; bounded by limit_s."""
        deadline = asyncio.get_running_loop().time() + limit_s
        self.post(Stopping())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), limit_s)
        if self._closing:  # ended conversations still closing: bounded by the same limit
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            _, late = await asyncio.wait(set(self._closing), timeout=left)
            for task in late:
                task.cancel()
        if self._error_timer:
            self._error_timer.cancel()
        self._stop_ring()
        self._p.leds.off()

    # --- the table and its actions ------------------------------------------------------------

    async def _dispatch(self, event: AppEvent) -> None:
        if isinstance(event, WakeDetected | ButtonReleased) and self.state in (
            State.IDLE,
            State.ERROR,
        ):
            remembered = self.memory.blocking()
            if remembered is not None:
                event = SessionFailed(remembered.kind, f"still failing: {remembered.message}")
        result = step(self._status, event)
        if result is None:
            log.debug("%s ignored in %s", type(event).__name__, self.state.value)
            return
        before, self._status = self._status, result.status
        if before != self._status or result.actions:
            log_step(before, result)
        self._render()
        for action in result.actions:
            await self._act(action, result, event)

    def _render(self) -> None:
        """LEDs, the wake word's barge-in threshold and the status listener follow the state."""
        self._p.leds.show(self._status, self.streaming)
        if self._conversation is not None:
            self._conversation.observe(self.state is State.LISTENING, self.streaming)
        self._p.wake.set_barge_in(self.state in _SPEAKER_BUSY)
        self._p.wake.set_stop_word(self.state in _RINGING_UNMUTED)
        for listener in self._listeners:
            listener(self._status)

    async def _act(self, action: Action, result: Step, event: AppEvent) -> None:
        if action is Action.OPEN_SESSION:
            self._open(event)
        elif action is Action.FLUSH_SPEAKER:
            if self._conversation is not None:
                self._conversation.barge_in(event if isinstance(event, WakeDetected) else None)
            else:
                self._p.speaker.flush()
        elif action is Action.END_CONVERSATION:
            await self._end_conversation(END_CAUSES.get(type(event), EndCause.ERROR))
        elif action is Action.END_CHIME:
            self._earcon(earcons.Earcon.END)
        elif action is Action.ERROR_EARCON:
            self._show_error(result.status.error or ErrorKind.SERVER)
        elif action is Action.CLOSE_MIC:
            self._mute_store.save(True)
            await self._p.mic_power.stop()
        elif action is Action.OPEN_MIC:
            self._mute_store.save(False)
            await self._p.mic_power.start()
        elif action is Action.MUTE_CHIME:
            self._earcon(earcons.Earcon.MUTE_ON)
        elif action is Action.UNMUTE_CHIME:
            self._earcon(earcons.Earcon.MUTE_OFF)
        elif action is Action.START_RING:
            self._start_ring()
        elif action is Action.STOP_RING:
            self._stop_ring()

    def _start_ring(self) -> None:
        """Ring (or go on ringing for one more timer); the time limit starts again."""
        self.ringer.start()
        if self._ring_limit:
            self._ring_limit.cancel()
        loop = asyncio.get_running_loop()
        self._ring_limit = loop.call_later(
            self._cfg.timers.ring_timeout_s, self.post, RingTimedOut()
        )

    def _stop_ring(self) -> None:
        if self._ring_limit:
            self._ring_limit.cancel()
            self._ring_limit = None
        if self.ringer.ringing:
            self.ringer.stop()

    def _earcon(self, kind: earcons.Earcon | ErrorKind) -> None:
        if self._cfg.audio.earcons:
            self._p.speaker.play_sound(earcons.pcm(kind))

    def play_wake_chime(self) -> None:
        """Called by the conversation when the chime should sound."""
        if self.state in (State.CONNECTING, State.LISTENING):
            self._earcon(earcons.Earcon.WAKE)

    def _show_error(self, kind: ErrorKind) -> None:
        self._p.speaker.flush()
        self._earcon(kind)
        if self._error_timer:
            self._error_timer.cancel()
        if kind is not ErrorKind.AUDIO_DEVICE:  # that one clears on AudioDeviceRecovered
            loop = asyncio.get_running_loop()
            self._error_timer = loop.call_later(ERROR_SHOW_S, self.post, ErrorShown())

    def _open(self, event: AppEvent) -> None:
        """A new conversation, opened by `event` (the wake word, else the button)."""
        wake = event if isinstance(event, WakeDetected) else None
        conversation = Conversation(
            self._cfg,
            self,
            self._p,
            tools=self.tools,
            memory=self.memory,
            wake=wake,
            opened=Opened.by_wake(wake) if wake else Opened(Trigger.BUTTON),
            clock=self._clock,
        )
        # The appliance is the one owner of the upload consumer: each conversation gets a fresh
        # one, and loses it the moment it ends (however long its session takes to close).
        self._p.mic.remove_consumer(UPLOAD_CONSUMER)
        upload = self._p.mic.add_consumer(
            UPLOAD_CONSUMER, UPLOAD_MAX_BLOCKS, gate=conversation.uplink.gate
        )
        conversation.observe(self.state is State.LISTENING, self.streaming)
        self._conversation = conversation
        self._conv_task = asyncio.get_running_loop().create_task(
            conversation.run(upload), name="conversation"
        )

    async def _end_conversation(self, cause: EndCause) -> None:
        if self._conversation is not None:
            self._conversation.ending(cause)
        task, self._conv_task, self._conversation = self._conv_task, None, None
        self._p.mic.remove_consumer(UPLOAD_CONSUMER)
        self._p.speaker.flush()
        if task is None or task.done():
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=END_TIMEOUT_S)
        if not done:
            log.warning(
                "the session did not close within %.1f s: it goes on closing by itself",
                END_TIMEOUT_S,
            )
            self._closing.add(task)
            task.add_done_callback(self._closed_late)

    def _closed_late(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        log.info("a late session close finished (%d still closing)", len(self._closing))

    # --- ToolHost -----------------------------------------------------------------------------

    def get_volume(self) -> int:
        """Current volume, 0..100."""
        return self._p.speaker.volume

    def set_volume(self, level: int) -> None:
        """Set the volume (the speaker persists it)."""
        self._p.speaker.set_volume(level)

    def request_end(self) -> None:
        """end_conversation tool: end after the current answer."""
        if self._conversation is not None:
            self._conversation.request_after_answer(EndRequested())

    def request_mute(self) -> None:
        """mute tool: mute after the current answer."""
        if self._conversation is not None:
            self._conversation.request_after_answer(MuteRequested())
