"""LiveClient: Gemini Live sessions on google-genai's client.aio.live, resumable across restarts.

    client = LiveClient(cfg, api_key, tools)
    async with client.session(resume=True) as conv:
        await conv.send_audio(pcm16k)             # 20-40 ms chunks
        async for ev in conv.events(): ...       # device.events session events, across turns

A `goAway` makes the conversation open a replacement connection with the newest handle before the
old one closes; audio sent meanwhile is buffered and delivered once, in order, on the new one (if
the streaming gate `may_send` still allows it then). With a turn in flight it first waits, while
time_left allows, for the handle that covers that turn. A link that owes data (a turn in flight)
and goes silent for STALL_S fails as a dead link (no network); see device.live.link.
Failures surface as `LiveError`s (device.live.errors) with `retry_after` set by the retry policy.
Every connection that was set up gets one record in the upload ledger when it ends, with what
opened its conversation (`opened`): device.privacy.ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import types

from device.apikey import ApiKey
from device.config import Config
from device.events import (
    EndCause,
    Opened,
    SessionEvent,
    SessionResumed,
    ToolCalled,
    ToolCallsCancelled,
    ToolSpec,
    Trigger,
    TurnCompleted,
)
from device.live.errors import (
    BadKeyError,
    DeadLinkError,
    HandleRejectedError,
    LiveError,
    ProtocolError,
    RetryPolicy,
    classify,
)
from device.live.handles import HandleStore
from device.live.link import STALL_S, Link, Outgoing
from device.live.setup import connect_config, make_client
from device.live.turns import TurnLog
from device.privacy.ledger import Ending, Ledger, Upload
from device.privacy.transcripts import Transcripts

log = logging.getLogger(__name__)

BY_COMMAND = Opened(Trigger.COMMAND)
"""What opened a session when the caller does not say (`livespeaker ask`, tools, tests)."""

MAX_CHUNK_BYTES = 1280  # 40 ms of 16 kHz int16: longer audio is split
HANDOVER_RESERVE_S = 5.0
"""Of a goAway's time_left, what is kept for opening the replacement connection; the rest may
be spent waiting for the handle that covers the turn in flight."""
WATCH_TICK_S = 0.5
"""How often the dead-link watch looks at the link."""


@dataclass
class SessionStats:
    """Counters for one conversation (summaries instead of per-block logging)."""

    audio_chunks_sent: int = 0
    audio_bytes_sent: int = 0
    audio_chunks_withheld: int = 0
    """Audio chunks not sent because `may_send()` said no when their turn on the wire came."""
    connections: int = 0
    handovers: int = 0
    handover_gap_s: list[float] = field(default_factory=list)
    """goAway received -> replacement connection live, per handover."""
    malformed_frames: int = 0
    turns: int = 0
    """Turns completed (turnComplete received)."""


def _seconds(duration: str | None, default: float) -> float:
    """A protobuf Duration string ("50s", "1.5s") in seconds."""
    try:
        return float((duration or "").removesuffix("s"))
    except ValueError:
        return default


class LiveClient:
    """Opens conversations; keeps the retry policy and the handle store between them."""

    def __init__(
        self,
        cfg: Config,
        api_key: ApiKey | None,
        tools: Sequence[ToolSpec] = (),
        *,
        store: HandleStore | None = None,
        policy: RetryPolicy | None = None,
        ledger: Ledger | None = None,
        key_source: Callable[[], ApiKey | None] | None = None,
    ) -> None:
        """`key_source`: read the key again before each session (off the loop), so a corrected
        key file is used at the next wake-up; `api_key` is then only the first answer."""
        self.cfg = cfg
        self.live = cfg.live
        self.tools = tuple(tools)
        self.store = store or HandleStore(cfg.state_dir)
        self.policy = policy or RetryPolicy(cfg.live)
        self.ledger = ledger or Ledger(cfg.state_dir, cfg.privacy)
        self.transcripts = Transcripts(cfg.privacy.log_transcripts)
        self._api_key = api_key
        self._key_source = key_source
        self._genai: genai.Client | None = None

    def fail(self, exc: BaseException) -> LiveError:
        """Classify exc and attach the retry delay."""
        return self.policy.apply(classify(exc, self.live))

    @contextlib.asynccontextmanager
    async def session(
        self,
        resume: bool = True,
        may_send: Callable[[], bool] | None = None,
        opened: Opened = BY_COMMAND,
        note: str = "",
    ) -> AsyncIterator[LiveSession]:
        """A conversation; resumes the saved handle if `resume` and it is still valid.

        `may_send()` is asked right before each audio chunk goes on the wire (also audio held
        back during a goAway handover): when it says no, the chunk is dropped, never sent later.
        `opened` (what opened it) goes into the upload ledger with each of its connections.
        `note` follows the system instruction on each of its connections (device news).
        """
        if self._key_source is not None:
            self._use_key(await asyncio.to_thread(self._key_source))
        saved = self.store.usable(self.live.model, self.live.resume_window_s) if resume else None
        conv = LiveSession(self, may_send, opened, note)
        try:
            link = await self.connect(saved.handle if saved else None, note)
        except HandleRejectedError as exc:
            log.warning("the server rejected the saved resumption handle (%s): starting fresh", exc)
            self.store.clear()
            saved = None
            try:
                link = await self.connect(None, note)
            except BaseException as exc2:
                raise self.fail(exc2) from exc2
        except LiveError as exc:
            raise self.policy.apply(exc) from exc.__cause__
        self.policy.succeeded()
        resumed = SessionResumed(saved is not None, saved.age_s if saved else None)
        conv.start(link, resumed, saved.handle if saved else None)
        try:
            yield conv
        finally:
            await conv.close()

    def _use_key(self, key: ApiKey | None) -> None:
        """Use this key from now on (a new SDK client when it changed)."""
        if key != self._api_key:
            if key is not None:
                log.info("API key from %s", key.source)
            self._api_key, self._genai = key, None

    async def connect(self, handle: str | None, note: str = "") -> Link:
        """One connection through setupComplete, bounded by live.connect_timeout_s."""
        if self._api_key is None:
            raise BadKeyError(
                "no API key: set GEMINI_API_KEY, live.api_key_file or the api-key credential"
            )
        if self._genai is None:
            self._genai = make_client(self.live, self._api_key.value)
        ctx = self._genai.aio.live.connect(
            model=self.live.model, config=connect_config(self.live, self.tools, handle, note)
        )
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self.live.connect_timeout_s):
                session = await stack.enter_async_context(ctx)
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise classify(exc, self.live) from exc
        if session.setup_complete is None:
            await stack.aclose()
            raise ProtocolError("the server's first message was not setupComplete")
        return Link(session, stack, resumed=handle is not None)


class LiveSession:
    """One conversation, possibly over several connections (goAway handovers)."""

    def __init__(
        self,
        client: LiveClient,
        may_send: Callable[[], bool] | None = None,
        opened: Opened = BY_COMMAND,
        note: str = "",
    ) -> None:
        self._client = client
        self._may_send = may_send
        self._opened = opened
        self._note = note
        self._id = secrets.token_hex(4)
        self._cause: EndCause | None = None
        self._queue: asyncio.Queue[SessionEvent | LiveError | None] = asyncio.Queue()
        self._link: Link | None = None
        self._links: list[Link] = []
        self._lock = asyncio.Lock()
        self._pending: list[Outgoing] | None = None
        self._handle: str | None = None
        self._new_handle = asyncio.Event()
        self._error: LiveError | None = None
        self._raised: LiveError | None = None
        self._handle_turns = -1
        self._tasks: set[asyncio.Task[None]] = set()
        self._known_tools = {t.name for t in client.tools}
        self._turns = TurnLog(client.transcripts)
        self.stats = SessionStats()

    @property
    def handle(self) -> str | None:
        """The newest resumable handle seen in this conversation."""
        return self._handle

    async def wait_for_handle(self, after_turns: int, timeout_s: float) -> str | None:
        """Wait (bounded) for a handle issued after `after_turns` completed turns; the newest.

        The service sends the handle that covers a turn just after its turnComplete: wait for it
        before closing if the next session should remember that turn.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._handle_turns < after_turns:
                    self._new_handle.clear()
                    await self._new_handle.wait()
        return self._handle

    def start(self, link: Link, first: SessionResumed, handle: str | None = None) -> None:
        """Begin reading from the first connection (opened with `handle`, if resuming)."""
        self._link = link
        self._links.append(link)
        self._handle = handle
        self.stats.connections = 1
        self._queue.put_nowait(first)
        self._spawn(self._read(link), f"live-recv-{self.stats.connections}")
        self._spawn(self._watch(), "live-watch")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending ------------------------------------------------------------------------------

    def ending(self, cause: EndCause) -> None:
        """Why the conversation is about to be closed (the upload ledger records it)."""
        self._cause = cause

    async def send_audio(self, pcm16k: bytes) -> None:
        """Stream microphone audio (16 kHz mono int16); split into chunks of at most 40 ms."""
        for i in range(0, len(pcm16k), MAX_CHUNK_BYTES):
            await self._send(Outgoing.audio(pcm16k[i : i + MAX_CHUNK_BYTES]))

    async def send_audio_end(self) -> None:
        """The microphone stream paused (flushes the server's VAD)."""
        await self._send(Outgoing("audio_end"))

    async def send_text(self, text: str) -> None:
        """A complete user text turn."""
        self._turns.user_text.append(text)
        await self._send(Outgoing("text", text=text))

    async def send_tool_response(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        """Answer a ToolCalled with the same id."""
        await self._send(Outgoing("tool", call_id=call_id, name=name, result=result))

    async def _send(self, item: Outgoing) -> None:
        if self._error is not None:
            raise self._error
        async with self._lock:
            if self._pending is not None:
                self._pending.append(item)  # handover in progress: goes to the new connection
                return
            assert self._link is not None
            await self._deliver(self._link, item)

    async def _deliver(self, link: Link, item: Outgoing) -> None:
        if item.kind == "audio" and self._may_send is not None and not self._may_send():
            self.stats.audio_chunks_withheld += 1
            return
        try:
            await link.send(item)
        except Exception as exc:
            raise self._failed(exc) from exc
        if item.kind == "audio":
            self.stats.audio_chunks_sent += 1
            self.stats.audio_bytes_sent += len(item.pcm)

    # --- receiving ----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[SessionEvent]:
        """Session events, continuously across turns and handovers; raises LiveError on failure."""
        while True:
            if self._raised is not None:
                raise self._raised
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, LiveError):
                self._raised = item
                raise item
            yield item

    def _failed(self, exc: BaseException) -> LiveError:
        """The conversation's one failure: classified (and backoff counted) once, then queued."""
        if self._error is None:
            err = self._error = self._client.fail(exc)
            log.error(
                "live session failed: %s (retry after %s s)",
                err,
                err.retry_after,
                extra={"LIVE_ERROR": err.kind.value},
            )
            self._queue.put_nowait(err)
        return self._error

    async def _read(self, link: Link) -> None:
        while True:
            try:
                async for msg in link.session.receive():
                    link.received()
                    for ev in await self._translate(link, msg):
                        self._queue.put_nowait(ev)
            except (ValueError, TypeError) as exc:  # a frame the SDK could not parse
                self.stats.malformed_frames += 1
                log.warning(
                    "ignored a malformed server frame: %s",
                    str(exc)[:200],
                    extra={"LIVE_ERROR": "malformed_frame"},
                )
                continue
            except Exception as exc:
                if link.going_away:  # the handover goes on without it
                    link.lost = True
                    self._new_handle.set()
                    return
                if link.closing or link is not self._link or self._pending is not None:
                    return  # replaced by a handover, or we closed it
                self._failed(exc)
                return

    async def _translate(self, link: Link, msg: types.LiveServerMessage) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        if (upd := msg.session_resumption_update) and upd.resumable and upd.new_handle:
            self._handle = upd.new_handle
            self._client.store.save(upd.new_handle, self._client.live.model)
            self._handle_turns = self.stats.turns
            self._new_handle.set()
        if msg.go_away is not None and not link.going_away:
            link.going_away = True
            self._spawn(self._handover(link, msg.go_away), "live-handover")
        if sc := msg.server_content:
            out += self._turns.content(link, sc, msg.usage_metadata)
            self.stats.turns += sum(isinstance(e, TurnCompleted) for e in out)
        if msg.tool_call and msg.tool_call.function_calls:
            link.turn_started()
            for fc in msg.tool_call.function_calls:
                if fc.name in self._known_tools:
                    out.append(ToolCalled(fc.id or "", fc.name, dict(fc.args or {})))
                else:
                    log.warning("model called unknown tool %r: answering with an error", fc.name)
                    await self.send_tool_response(
                        fc.id or "", fc.name or "", {"error": f"unknown tool {fc.name}"}
                    )
        if (tc := msg.tool_call_cancellation) and tc.ids:
            out.append(ToolCallsCancelled(tuple(tc.ids)))
        return out

    async def _watch(self) -> None:
        """A dead link: the server owes data (a turn in flight) and sends nothing for STALL_S.

        The keepalive ping alone notices that only after ping_interval + ping_timeout, and the
        ping timeout must tolerate the service's slow pongs (device.live.setup).
        """
        while self._error is None:
            await asyncio.sleep(WATCH_TICK_S)
            link = self._link
            if link is None or link.closing or (late := link.overdue(STALL_S)) is None:
                continue
            silent = link.clock() - link.last_received
            self._failed(
                DeadLinkError(
                    f"no data from the server for {silent:.1f} s while a turn was in flight "
                    f"({late:.1f} s past due)"
                )
            )
            link.abort()
            return

    # --- goAway handover ----------------------------------------------------------------------

    async def _turn_handle(self, old: Link, left: float) -> None:
        """With a turn in flight at goAway: wait (bounded by `left` - HANDOVER_RESERVE_S) for the
        handle the server issues after that turn, so the replacement remembers it.

        Until then the old connection carries on as usual (the answer, audio sent up).
        """
        budget = left - HANDOVER_RESERVE_S
        if not old.in_turn or budget <= 0:
            return
        after = self.stats.turns + 1
        log.info("goAway during a turn: waiting up to %.1f s for the handle that covers it", budget)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget):
                while self._handle_turns < after and not old.lost:
                    self._new_handle.clear()
                    await self._new_handle.wait()
        if self._handle_turns < after:
            log.warning("goAway: the turn's handle did not come: resuming from an older one")

    async def _handover(self, old: Link, go_away: types.LiveServerGoAway) -> None:
        t0 = asyncio.get_running_loop().time()
        left = _seconds(go_away.time_left, 10.0)
        await self._turn_handle(old, left)
        left -= asyncio.get_running_loop().time() - t0
        log.info("goAway (%.0f s left): opening a replacement connection", left)
        async with self._lock:
            self._pending = []
        try:
            if self._handle is None:
                log.warning("goAway before any resumption handle: the new connection starts fresh")
            new = await self._client.connect(self._handle, self._note)
            self._links.append(new)
            new.index = len(self._links)
            async with self._lock:
                pending, self._pending = self._pending or [], None
                self._link = new
                old.handed_over = True
                for item in pending:
                    await self._deliver(new, item)
        except Exception as exc:
            log.error("goAway handover failed")
            self._pending = None
            self._failed(exc)
            return
        self.stats.connections += 1
        self.stats.handovers += 1
        self.stats.handover_gap_s.append(asyncio.get_running_loop().time() - t0)
        log.info("handover done: %d buffered messages sent on the new connection", len(pending))
        self._queue.put_nowait(SessionResumed(True, None))
        self._spawn(self._read(new), f"live-recv-{self.stats.connections}")
        await old.close_after_turn(left)
        self._record(old)

    def _record(self, link: Link) -> None:
        """The ledger's record of a connection that is over (once per connection)."""
        if link.recorded:
            return
        link.recorded = True
        error = None if link.handed_over or self._error is None else self._error.kind.value
        ended = Ending.HANDOVER if link.handed_over else Ending.FAILED if error else Ending.CLOSED
        self._client.ledger.add(
            Upload.make(
                self._opened,
                opened_at=link.opened_wall,
                conversation=self._id,
                connection=link.index,
                resumed=link.resumed,
                duration_s=link.clock() - link.opened_at,
                audio_bytes=link.audio_bytes_up,
                bytes_up=link.bytes_up,
                bytes_down=link.bytes_down,
                ended=ended,
                error=error,
                cause=None if link.handed_over else self._cause,
            )
        )

    async def close(self) -> None:
        """End the conversation: stop the readers, close every connection."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in self._links:
            await link.close()
            self._record(link)
        self._queue.put_nowait(None)
        s = self.stats
        log.info(
            "conversation closed: %d audio chunks sent (%d withheld: streaming had stopped), "
            "%d connections, %d malformed frames",
            s.audio_chunks_sent,
            s.audio_chunks_withheld,
            s.connections,
            s.malformed_frames,
        )
