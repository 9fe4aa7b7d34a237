"""LiveSimulator: a TLS websocket server speaking the Gemini Live API, for tests and the demo.

    sim = LiveSimulator(ensure_certs(d), models=["gemini-3.8-live"], api_keys=["k"])
    await sim.start()            # sim.base_url -> "https://127.0.0.1:PORT"
    sim.inject(Fault(FaultAction.GO_AWAY, When.AUDIO_IN, after_chunks=20))
    ...                          # point the real SDK at it (live.base_url + live.ca_file)
    sim.connections[0].audio_in()  # every frame it received, parsed
    await sim.stop()

`SimulatorThread` runs one on a background thread for synchronous callers.
"""

from __future__ import annotations

import asyncio
import http
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from device.simulator import protocol as p
from device.simulator.audio import UtteranceBook
from device.simulator.certs import CertFiles
from device.simulator.connection import SimConnection
from device.simulator.faults import Fault, When

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("gemini-3.8-live", "gemini-3.1-flash-live-preview")
T = TypeVar("T")


@dataclass
class ConnectionRecord:
    """One client connection as the simulator saw it."""

    id: int
    path: str
    key: str | None = None
    model: str | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every frame received, parsed, in order (the setup first)."""
    sent: list[str] = field(default_factory=list)
    """Top-level keys of every message sent (serverContent subkey added), in order."""
    close_code: int | None = None
    close_reason: str = ""
    handles: list[str] = field(default_factory=list)
    """Resumption handles issued on this connection."""
    held_reads: int = 0
    """Reads (e.g. the client's pings) a FREEZE held back and delivered late."""
    heard: list[str] = field(default_factory=list)
    """What the simulator understood of each spoken turn ("" when no registered utterance matched)."""

    def realtime(self, field_name: str) -> list[Any]:
        """Values of one realtime_input field (e.g. "audio", "text") in arrival order."""
        out = []
        for f in self.frames:
            rt = p.pick(f, "realtime_input")
            if isinstance(rt, dict) and (v := p.pick(rt, field_name)) is not None:
                out.append(v)
        return out

    def audio_in(self) -> list[bytes]:
        """Decoded realtime audio chunks, in arrival order."""
        return [p.b64decode(a["data"]) for a in self.realtime("audio") if "data" in a]


class LiveSimulator:
    """The server. Models are names without `models/`; api_keys=None accepts any non-empty key."""

    def __init__(
        self,
        certs: CertFiles,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        api_keys: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        realtime_factor: float = 4.0,
        hold_turn_complete: bool = True,
        go_away_time_left_s: float = 5.0,
        max_frame_bytes: int = 16 * 1024 * 1024,
        chunk_ms: int = 100,
        answer_rate: int = 24000,
    ) -> None:
        self.certs = certs
        self.models = {p.strip_model(m) for m in models}
        self.api_keys = None if api_keys is None else set(api_keys)
        self.host, self.port = host, port
        self.realtime_factor = realtime_factor
        """Reply audio is sent this many times faster than it plays."""
        self.hold_turn_complete = hold_turn_complete
        """Wait (like the service) about as long as the reply still plays before turnComplete."""
        self.go_away_time_left_s = go_away_time_left_s
        self.max_frame_bytes = max_frame_bytes
        self.chunk_ms = chunk_ms
        self.answer_rate = answer_rate
        """The sample rate of the reply audio, as its `audio/pcm;rate=N` label says (the service
        sends 24 kHz; another rate tests a client that reads the label)."""
        self.connections: list[ConnectionRecord] = []
        self.faults: list[Fault] = []
        self.utterances = UtteranceBook()
        self.histories: dict[str, tuple[str, ...]] = {}
        """Resumption handle -> the user turns of the conversation when it was issued."""
        self._server: Server | None = None
        self._open: list[SimConnection] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (TLS) on host:port (port 0 picks a free one)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self.certs.server_context(),
            process_request=self._check_path,
            max_size=self.max_frame_bytes,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("Live API simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            for conn in list(self._open):
                conn.unstall()
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LiveSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What goes into live.base_url."""
        return f"https://{self.host}:{self.port}"

    # --- control -------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm a failure for the next `fault.times` connections.

        Faults other than When.SETUP also arm connections already open (oldest first).
        """
        for conn in self._open:
            if fault.when is When.SETUP or not conn.live:
                continue
            if fault.times > 0 and (fault.key is None or fault.key == conn.rec.key):
                fault.times -= 1
                conn.arm(fault)
        self.faults.append(fault)
        return fault

    def register_utterance(self, text: str, pcm16k: npt.NDArray[np.int16]) -> None:
        """Audio turns matching this audio are "transcribed" as `text`."""
        self.utterances.register(text, pcm16k)

    def new_handle(self, history: tuple[str, ...]) -> str:
        """Issue a resumption handle for a conversation state."""
        handle = "h-" + secrets.token_urlsafe(12)
        self.histories[handle] = history
        return handle

    def take_faults(self, key: str | None) -> list[Fault]:
        """The faults that apply to a new connection with this key (each used up once)."""
        taken = []
        for f in self.faults:
            if f.times > 0 and (f.key is None or f.key == key):
                f.times -= 1
                taken.append(f)
        return taken

    @property
    def frames(self) -> list[tuple[int, dict[str, Any]]]:
        """(connection id, frame) for every frame received, connection by connection."""
        return [(c.id, f) for c in self.connections for f in c.frames]

    def key_ok(self, key: str | None) -> bool:
        """Whether this key is accepted."""
        if not key:
            return False
        return self.api_keys is None or key in self.api_keys

    # --- connections --------------------------------------------------------------------------

    def _check_path(self, conn: ServerConnection, request: Request) -> Response | None:
        if p.parse_path(request.path) is None:
            return conn.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        record = ConnectionRecord(
            id=len(self.connections), path=ws.request.path if ws.request else ""
        )
        self.connections.append(record)
        conn = SimConnection(self, ws, record)
        self._open.append(conn)
        try:
            await conn.run()
        except Exception:
            log.exception("simulator connection %d failed", record.id)
        finally:
            self._open.remove(conn)
            if ws.close_code is not None and record.close_code is None:
                record.close_code = ws.close_code
                record.close_reason = ws.close_reason or ""


class SimulatorThread:
    """A LiveSimulator on its own event loop thread, for synchronous code (CLI, sync tests)."""

    def __init__(self, certs: CertFiles, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.sim = LiveSimulator(certs, **kwargs)
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-simulator")

    def __enter__(self) -> LiveSimulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(timeout=30)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the simulator's loop thread (control methods are not thread-safe)."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)
