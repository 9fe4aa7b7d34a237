"""One simulated Live session on one websocket: setup, VAD, replies, tools, resumption, faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from device.simulator import brain
from device.simulator import protocol as p
from device.simulator.audio import (
    OUT_RATE,
    EnergyVad,
    VadEvent,
    resample_pcm,
    speak,
    speech_seconds,
)
from device.simulator.faults import Fault, FaultAction, When

if TYPE_CHECKING:
    from device.simulator.server import ConnectionRecord, LiveSimulator

log = logging.getLogger(__name__)

_CLOSES = {
    FaultAction.CLOSE_QUOTA: (1011, p.REASON_QUOTA),
    FaultAction.CLOSE_INTERNAL: (1011, p.REASON_INTERNAL),
    FaultAction.CLOSE_UNAVAILABLE: (1011, p.REASON_UNAVAILABLE),
}


def _discard(data: bytes) -> None:
    """A stalled connection's data_received: the bytes are lost, like packets a router drops."""


class SimConnection:
    """Runs the protocol for one connection and records what it received."""

    def __init__(self, sim: LiveSimulator, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.sim, self.ws, self.rec = sim, ws, record
        self.history: tuple[str, ...] = ()
        self.tools: set[str] = set()
        self.vad = EnergyVad()
        self.manual_vad = False
        self.faults: list[Fault] = []
        self.audio_chunks = 0
        self._reply: asyncio.Task[None] | None = None
        self._tool_wait: tuple[str, asyncio.Future[Any]] | None = None
        self._tool_ids = 0
        self._timers: list[asyncio.Task[None]] = []
        self._ready = False
        self.stalled = False
        """A STALL fault fired: nothing is sent or read any more."""
        self._thawed = asyncio.Event()
        self._thawed.set()
        self.resumable = False
        """The client asked for resumption handles (sessionResumption in the setup)."""

    # --- sending ------------------------------------------------------------------------------

    async def send(self, msg: dict[str, Any]) -> None:
        """Send a server message and note its kind (nothing once stalled)."""
        await self._thawed.wait()
        if self.stalled:
            return
        kinds = list(msg)
        if "serverContent" in msg:
            kinds = [f"serverContent.{k}" for k in msg["serverContent"]] + kinds[1:]
        self.rec.sent.extend(kinds)
        await self.ws.send(json.dumps(msg))

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and reason, as the service does."""
        self.rec.close_code, self.rec.close_reason = code, reason
        await self.ws.close(code, reason)

    # --- main loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Setup, then handle frames until the connection ends."""
        try:
            if not await self._setup():
                return
            async for raw in self.ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await self.close(1007, p.REASON_INVALID)
                    return
                self.rec.frames.append(msg)
                await self._dispatch(msg)
        except ConnectionClosed:
            pass
        finally:
            for t in [*self._timers, *([self._reply] if self._reply else [])]:
                t.cancel()

    async def _setup(self) -> bool:
        parsed = p.parse_path(self.rec.path)
        version, query_key = parsed if parsed else ("v1beta", None)
        headers = self.ws.request.headers if self.ws.request else None
        key = (headers.get("x-goog-api-key") if headers else None) or query_key
        auth = headers.get("authorization", "") if headers else ""
        if not key and auth.startswith("Token "):
            key = auth.removeprefix("Token ")
        self.rec.key = key
        try:
            first = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        except (ValueError, TimeoutError):
            await self.close(1007, p.REASON_INVALID)
            return False
        self.rec.frames.append(first)
        setup = p.pick(first, "setup")
        if not isinstance(setup, dict) or not isinstance(p.pick(setup, "model"), str):
            await self.close(1007, p.REASON_INVALID)
            return False
        self.rec.setup = setup
        self.rec.model = model = p.strip_model(setup["model"])
        if not self.sim.key_ok(key):
            await self.close(1007, p.REASON_BAD_KEY)
            return False
        if model not in self.sim.models:
            await self.close(1008, p.reason_not_found(model, version))
            return False
        resumption = p.pick(setup, "session_resumption")
        handle = p.pick(resumption, "handle")
        if handle:
            if handle not in self.sim.histories:
                await self.close(1007, p.REASON_HANDLE)
                return False
            self.history = self.sim.histories[handle]
            self.rec.resumed_from = handle
        self.tools = p.declared_tools(setup)
        self.manual_vad = p.auto_vad_disabled(setup)
        self.vad = EnergyVad(silence_ms=p.silence_ms(setup))
        self.faults += self.sim.take_faults(key)
        for f in self.faults:
            if f.when is When.SETUP and f.action in (*_CLOSES, FaultAction.DROP):
                await self._fire(f)
                return False
        for f in self.faults:
            if f.action is FaultAction.SLOW_SETUP:
                log.info("simulator connection %d: setupComplete in %g s", self.rec.id, f.after_s)
                with contextlib.suppress(TimeoutError):  # unless the client gives up first
                    await asyncio.wait_for(self.ws.wait_closed(), f.after_s)
        await self.send(p.setup_complete())
        self.resumable = resumption is not None
        if self.resumable:
            await self._issue_handle()
        self._ready = True
        for f in self.faults:
            if f.when is When.SETUP and f.action is not FaultAction.SLOW_SETUP:
                await self._fire(f)
            elif f.when is When.AFTER_S:
                self._timers.append(asyncio.create_task(self._fire_later(f), name="sim-fault"))
        return True

    @property
    def live(self) -> bool:
        """Set up and not closed."""
        return self._ready and self.rec.close_code is None and self.ws.close_code is None

    def arm(self, f: Fault) -> None:
        """Arm a (non-SETUP) fault on this open connection."""
        if f.when is When.AFTER_S:
            self._timers.append(asyncio.create_task(self._fire_later(f), name="sim-fault"))
        elif f.when is When.AUDIO_IN:  # counted from now
            self.faults.append(
                Fault(f.action, f.when, after_chunks=self.audio_chunks + f.after_chunks)
            )
        else:
            self.faults.append(f)

    async def _issue_handle(self) -> None:
        handle = self.sim.new_handle(self.history)
        self.rec.handles.append(handle)
        await self.send(p.resumption_update(handle))

    # --- client messages ----------------------------------------------------------------------

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if (rt := p.pick(msg, "realtime_input")) is not None:
            await self._realtime(rt)
        elif (cc := p.pick(msg, "client_content")) is not None:
            text = p.texts_of_turns(p.pick(cc, "turns"))
            if text and p.pick(cc, "turn_complete", False):
                await self._start_turn(text, audio_s=None)
        elif (tr := p.pick(msg, "tool_response")) is not None:
            for resp in p.pick(tr, "function_responses", []) or []:
                if self._tool_wait and p.pick(resp, "id") == self._tool_wait[0]:
                    fut = self._tool_wait[1]
                    if not fut.done():
                        fut.set_result(p.pick(resp, "response"))
        else:
            await self.close(1007, p.REASON_INVALID)

    async def _realtime(self, rt: dict[str, Any]) -> None:
        audio = p.pick(rt, "audio") or next(iter(p.pick(rt, "media_chunks") or []), None)
        if isinstance(audio, dict) and "data" in audio:
            self.audio_chunks += 1
            await self._check_audio_faults()
            if not self.manual_vad or self.vad.speaking:
                await self._on_vad(self.vad.feed(p.b64decode(audio["data"])))
        if isinstance(text := p.pick(rt, "text"), str) and text:
            await self._start_turn(text, audio_s=None)
        if p.pick(rt, "audio_stream_end") or p.pick(rt, "activity_end") is not None:
            await self._on_vad([self.vad.end()])
        if p.pick(rt, "activity_start") is not None:
            self.vad.speaking = True
            self.vad.turn = bytearray()
            await self._on_vad([VadEvent.SPEECH_STARTED])

    async def _on_vad(self, events: list[VadEvent]) -> None:
        for ev in events:
            if ev is VadEvent.SPEECH_STARTED:
                log.info(
                    "simulator connection %d: speech started (after %d audio chunks)",
                    self.rec.id,
                    self.audio_chunks,
                )
                if self.replying:
                    await self._interrupt()
            elif ev is VadEvent.SPEECH_ENDED:
                pcm = np.frombuffer(bytes(self.vad.turn), np.int16)
                text = self.sim.utterances.match(pcm)
                seconds = speech_seconds(pcm)
                log.info(
                    "simulator connection %d: speech ended (%.1f s): %s",
                    self.rec.id,
                    seconds,
                    repr(text) if text else "no registered utterance matches",
                )
                self.rec.heard.append(text or "")
                if text is None:
                    text = f"[an audio question of {seconds:.1f} seconds]"
                await self.send(p.content(inputTranscription={"text": text}))
                await self._start_turn(text, audio_s=seconds)

    @property
    def replying(self) -> bool:
        """True while a reply is being generated or sent."""
        return self._reply is not None and not self._reply.done()

    async def _interrupt(self) -> None:
        assert self._reply is not None
        self._reply.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reply
        await self.send(p.content(interrupted=True))
        if self._tool_wait is not None:
            await self.send({"toolCallCancellation": {"ids": [self._tool_wait[0]]}})
            self._tool_wait = None

    async def _start_turn(self, text: str, audio_s: float | None) -> None:
        if self.replying:
            await self._interrupt()
        prior = self.history
        self.history = (*prior, text)
        self._reply = asyncio.create_task(self._respond(text, prior), name="sim-reply")
        self._reply.add_done_callback(self._reply_done)

    def _reply_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("simulator connection %d: reply failed", self.rec.id, exc_info=exc)

    # --- replies ------------------------------------------------------------------------------

    async def _respond(self, user: str, prior: tuple[str, ...]) -> None:
        try:
            if self.resumable:
                await self.send(p.resumption_update(None))
            reply = brain.answer(user, prior, self.tools)
            text = reply.text
            if reply.tool is not None:
                text = await self._call_tool(reply.tool)
            await self._speak(text)
            await self.send(
                p.turn_complete(sum(map(brain.tokens, (*prior, user))), brain.tokens(text))
            )
            if self.resumable:
                await self._issue_handle()
        except ConnectionClosed:
            pass

    async def _call_tool(self, req: brain.ToolRequest) -> str:
        self._tool_ids += 1
        call_id = f"fc-{self.rec.id}-{self._tool_ids}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tool_wait = (call_id, fut)
        await self.send(
            {"toolCall": {"functionCalls": [{"id": call_id, "name": req.name, "args": req.args}]}}
        )
        log.info("simulator connection %d: tool call %s %s", self.rec.id, req.name, req.args)
        try:
            result = await asyncio.wait_for(fut, 60)
        except TimeoutError:
            result = {"error": "no tool response"}
        log.info("simulator connection %d: tool %s answered %s", self.rec.id, req.name, result)
        self._tool_wait = None
        return brain.after_tool(req, result)

    async def _speak(self, text: str) -> None:
        pcm = await asyncio.to_thread(speak, text)
        rate = self.sim.answer_rate
        if rate != OUT_RATE:
            pcm = resample_pcm(pcm, OUT_RATE, rate)
        step = rate * self.sim.chunk_ms // 1000 * 2
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        words = text.split()
        per = max(1, -(-len(words) // max(1, len(chunks))))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, chunk in enumerate(chunks):
            await self.send(p.audio_chunk(chunk, rate))
            if piece := words[i * per : (i + 1) * per]:
                await self.send(p.content(outputTranscription={"text": " ".join(piece) + " "}))
            await self._check_reply_faults(i + 1)
            await asyncio.sleep(self.sim.chunk_ms / 1000 / self.sim.realtime_factor)
        if rest := words[len(chunks) * per :]:
            await self.send(p.content(outputTranscription={"text": " ".join(rest)}))
        await self.send(p.content(generationComplete=True))
        if self.sim.hold_turn_complete:
            playing = len(pcm) / 2 / rate
            await asyncio.sleep(max(0.0, playing - (loop.time() - started)))

    # --- faults -------------------------------------------------------------------------------

    async def _check_reply_faults(self, sent_chunks: int) -> None:
        for f in list(self.faults):
            if f.when is When.MID_REPLY and sent_chunks >= f.after_chunks:
                self.faults.remove(f)
                await self._fire(f)

    async def _check_audio_faults(self) -> None:
        for f in list(self.faults):
            if f.when is When.AUDIO_IN and self.audio_chunks >= f.after_chunks:
                self.faults.remove(f)
                await self._fire(f)

    async def _fire_later(self, f: Fault) -> None:
        await asyncio.sleep(f.after_s)
        with contextlib.suppress(ConnectionClosed):
            await self._fire(f)

    async def _fire(self, f: Fault) -> None:
        log.info("simulator connection %d: %s", self.rec.id, f.action.value)
        if f.action in _CLOSES:
            await self.close(*_CLOSES[f.action])
        elif f.action is FaultAction.DROP:
            self.rec.close_code = 1006
            self.ws.transport.abort()
        elif f.action is FaultAction.GO_AWAY:
            left = self.sim.go_away_time_left_s
            await self.send({"goAway": {"timeLeft": f"{left:g}s"}})
            self._timers.append(asyncio.create_task(self._deadline(left), name="sim-deadline"))
        elif f.action is FaultAction.MALFORMED:
            self.rec.sent.append("malformed")
            await self.ws.send('{"serverContent": {"modelTurn": ')
        elif f.action is FaultAction.UNKNOWN:
            await self.send({"bogusField": {"x": 1}})
        elif f.action is FaultAction.STALL:
            self.stall()
        elif f.action is FaultAction.FREEZE:
            self._timers.append(asyncio.create_task(self._freeze(f.duration_s), name="sim-freeze"))
        elif f.action is FaultAction.OVERSIZED:
            self.rec.sent.append("oversized")
            await self.ws.send(json.dumps(p.audio_chunk(bytes(900 * 1024))))

    def stall(self) -> None:
        """Stop sending; drop what arrives unread. The TCP connection stays open.

        Incoming bytes are discarded rather than reading paused: websockets resumes reading by
        itself whenever its own buffer drains, which would end the stall.
        """
        self.stalled = True
        self.rec.sent.append("stall")
        setattr(self.ws, "data_received", _discard)  # noqa: B010 (the protocol callback)

    async def _freeze(self, seconds: float) -> None:
        """Hold everything in both directions for `seconds`, then deliver it late."""
        held: list[bytes] = []
        self._thawed.clear()
        self.rec.sent.append("freeze")
        setattr(self.ws, "data_received", held.append)  # noqa: B010 (the protocol callback)
        try:
            await asyncio.sleep(seconds)
        finally:
            delattr(self.ws, "data_received")  # the connection's own method again
            self._thawed.set()
        log.info("simulator connection %d: thawed, %d reads held", self.rec.id, len(held))
        self.rec.held_reads += len(held)
        for data in held:
            self.ws.data_received(data)

    def unstall(self) -> None:
        """Cut a stalled connection (the simulator stops): nobody would answer its close."""
        if self.stalled:
            self.ws.transport.abort()

    async def _deadline(self, left: float) -> None:
        await asyncio.sleep(left)
        with contextlib.suppress(ConnectionClosed):
            await self.close(1011, p.REASON_DEADLINE)
