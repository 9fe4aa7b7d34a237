"""A real sd_notify receiver: an AF_UNIX datagram socket like systemd's, read on a thread."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Message:
    """One datagram: its KEY=VALUE lines and when it arrived (time.monotonic())."""

    fields: dict[str, str]
    at: float
    raw: str


class NotifySocket:
    """Bind a datagram socket; `path` goes into NOTIFY_SOCKET. Use as a context manager."""

    def __init__(self) -> None:
        # sun_path is limited to 108 bytes: pytest's tmp_path can be longer.
        self._dir = Path(tempfile.mkdtemp(prefix="notify-", dir="/tmp"))
        self.path = str(self._dir / "sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)

    def __enter__(self) -> NotifySocket:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            raw = data.decode()
            fields = dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)
            with self._lock:
                self.messages.append(Message(fields, time.monotonic(), raw))

    def snapshot(self) -> list[Message]:
        """All messages received so far."""
        with self._lock:
            return list(self.messages)

    def with_key(self, key: str, value: str | None = None) -> list[Message]:
        """Messages carrying key (and value, if given)."""
        return [
            m
            for m in self.snapshot()
            if key in m.fields and (value is None or m.fields[key] == value)
        ]

    def watchdog_pings(self) -> list[float]:
        """Arrival times of WATCHDOG=1 messages."""
        return [m.at for m in self.with_key("WATCHDOG", "1")]

    def wait_for(
        self, predicate: Callable[[list[Message]], bool], timeout: float, what: str = ""
    ) -> list[Message]:
        """Block until predicate(all messages) holds; AssertionError with what was seen otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            time.sleep(0.02)
        seen = [m.raw for m in self.snapshot()][-30:]
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; last messages: {seen}"
        )

    async def until(
        self,
        predicate: Callable[[list[Message]], bool],
        timeout: float,  # noqa: ASYNC109 -- mirrors wait_for()
        what: str = "",
    ) -> list[Message]:
        """wait_for() for async tests (does not block the event loop)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            await asyncio.sleep(0.02)
        seen = [m.raw for m in self.snapshot()][-30:]
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; last messages: {seen}"
        )
