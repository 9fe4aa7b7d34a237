"""Keeps one audio stream open for the daemon's life: open, watch, reopen with backoff.

Used by Microphone and Speaker. While the device is missing, busy or was unplugged, the loop emits
`AudioDeviceFailed` once per outage (with a message a user can act on), retries with exponential
backoff (re-enumerating PortAudio when no other stream is open, so a replugged USB device is
found), and emits `AudioDeviceRecovered` when a stream runs again. Nothing here raises out of
`run()` except cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from device.audio import devices
from device.audio.devices import AudioDeviceError, Direction
from device.events import AudioDeviceFailed, AudioDeviceRecovered

log = logging.getLogger(__name__)

DeviceEvent = AudioDeviceFailed | AudioDeviceRecovered
EventSink = Callable[[DeviceEvent], None]


class OpenStream(Protocol):
    """What an opener returns: a running stream the supervisor can watch and close."""

    def failure(self) -> str | None:
        """None while healthy, else why the stream is considered dead (loop thread)."""

    def close(self) -> None:
        """Stop and close the stream (blocking, quick)."""


Opener = Callable[[], OpenStream]
"""Blocking: resolves the device and opens a started stream, or raises AudioDeviceError."""


class DeviceSupervisor:
    """The reopen loop for one direction; `await run()` in a named task, cancel to stop."""

    def __init__(
        self,
        direction: Direction,
        opener: Opener,
        on_event: EventSink | None = None,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        poll_s: float = 0.2,
        settle_s: float = 2.0,
        reinit: Callable[[], bool] = devices.reinitialize,
    ) -> None:
        """reinit re-enumerates devices before a retry (PortAudio's, unless a test injects one).

        After an outage, recovery is announced only once the new stream has stayed healthy for
        settle_s, so a device that opens and dies again is one outage, not a flapping pair.
        """
        self.direction = direction
        self._reinit = reinit
        self._opener = opener
        self._on_event = on_event
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self.ready = asyncio.Event()
        """Set while a stream is open and healthy."""
        self.last_error: AudioDeviceError | None = None
        """Why the last open failed (None after a successful open)."""
        self.attempted = asyncio.Event()
        """Set after the first open attempt, successful or not."""
        self.failures = 0
        """Outages so far (opens that failed after a success, and streams that died)."""
        self.failed_opens = 0
        """Opens that failed (device missing or busy): proof the reopen loop is alive meanwhile."""
        self.settle_s = settle_s

    def _emit(self, event: DeviceEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("audio device event handler failed")

    def _open(self, reinit: bool) -> OpenStream:
        try:
            if reinit:
                self._reinit()
            with devices.LOCK:
                return self._opener()
        except AudioDeviceError:
            raise
        except Exception as exc:  # component boundary: PortAudio itself failed
            log.exception("audio %s: unexpected error while opening", self.direction.value)
            raise AudioDeviceError(f"audio {self.direction.value} failed: {exc}") from exc

    async def run(self) -> None:
        """Open, watch, reopen; returns only by cancellation."""
        backoff = self.initial_backoff_s
        failed = False
        self.attempted.clear()
        while True:
            try:
                stream = await asyncio.to_thread(self._open, failed)
            except AudioDeviceError as exc:
                self.failed_opens += 1
                self.last_error = exc
                self.attempted.set()
                if not failed:
                    failed = True
                    self.failures += 1
                    log.error("audio %s unavailable: %s", self.direction.value, exc)
                    self._emit(AudioDeviceFailed(self.direction.value, str(exc)))
                else:
                    log.debug("audio %s still unavailable: %s", self.direction.value, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.last_error = None
            self.attempted.set()
            reason, settled = await self._watch(stream, recovering=failed)
            if settled or not failed:
                backoff = self.initial_backoff_s
                self.failures += 1
                log.error("audio %s failed: %s; reopening", self.direction.value, reason)
                self._emit(AudioDeviceFailed(self.direction.value, reason))
            else:
                log.debug("audio %s died again before settling: %s", self.direction.value, reason)
            failed = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _watch(self, stream: OpenStream, *, recovering: bool) -> tuple[str, bool]:
        """Watch until the stream fails; returns why, and whether it had settled (recovered)."""
        self.ready.set()
        opened = time.monotonic()
        settled = not recovering
        try:
            # Polled: a dead PortAudio stream is only visible by asking it.
            while (reason := stream.failure()) is None:
                if not settled and time.monotonic() - opened >= self.settle_s:
                    settled = True
                    log.info("audio %s works again", self.direction.value)
                    self._emit(AudioDeviceRecovered(self.direction.value))
                await asyncio.sleep(self.poll_s)
            return reason, settled
        finally:
            self.ready.clear()
            stream.close()  # quick, and must happen even when cancelled

    async def wait_started(self, limit_s: float) -> None:
        """Wait for the first open attempt; raise its error if it failed (fail fast at start)."""
        await asyncio.wait_for(self.attempted.wait(), limit_s)
        if self.last_error is not None:
            raise self.last_error


@contextlib.asynccontextmanager
async def run_in_task(
    run: Callable[[], Awaitable[None]], supervisor: DeviceSupervisor, name: str, limit_s: float
) -> AsyncIterator[None]:
    """Run a stream owner's `run()` in a named task for the block; raise the first open error."""
    task = asyncio.ensure_future(run())
    task.set_name(name)
    try:
        await supervisor.wait_started(limit_s)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
