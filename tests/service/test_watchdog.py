"""Watchdog: WATCHDOG=1 on a real NOTIFY_SOCKET only while a real progress counter advances."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from device.service.notify import Notifier
from device.service.watchdog import StartupPinger, Watchdog
from tests.service.notify_socket import NotifySocket

INTERVAL_S = 0.4  # WatchdogSec: pings every 0.2 s


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        monkeypatch.setenv("WATCHDOG_USEC", str(int(INTERVAL_S * 1e6)))
        yield ns


class CountingThread:
    """Stands in for an audio thread: bumps a counter every 10 ms while running."""

    def __init__(self) -> None:
        self.count = 0
        self.running = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-audio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._quit.is_set():
            if self.running.wait(0.05):
                self.count += 1
                time.sleep(0.01)

    def close(self) -> None:
        self._quit.set()
        self._thread.join(2)


async def _quiet_for(ns: NotifySocket, seconds: float) -> int:
    """Number of WATCHDOG pings that arrive within the next `seconds`."""
    before = len(ns.watchdog_pings())
    await asyncio.sleep(seconds)
    return len(ns.watchdog_pings()) - before


@pytest.mark.unit
async def test_pings_follow_progress(notify_socket: NotifySocket) -> None:
    audio = CountingThread()
    audio.running.set()
    wd = Watchdog.from_environment(Notifier(), lambda: audio.count)
    assert wd is not None and wd.period_s == pytest.approx(INTERVAL_S / 2)
    task = asyncio.create_task(wd.run(), name="watchdog")
    try:
        await notify_socket.until(lambda _: len(notify_socket.watchdog_pings()) >= 4, 10, "4 pings")

        audio.running.clear()  # the audio thread wedges
        await asyncio.sleep(5 * wd.period_s)  # any ping already on its way has arrived
        assert await _quiet_for(notify_socket, 8 * wd.period_s) == 0

        audio.running.set()  # it recovers
        n = len(notify_socket.watchdog_pings())
        await notify_socket.until(
            lambda _: len(notify_socket.watchdog_pings()) >= n + 3, 10, "pings after recovery"
        )
    finally:
        task.cancel()
        audio.close()
    assert wd.stalls == 1


@pytest.mark.unit
async def test_a_blocked_event_loop_sends_no_pings(notify_socket: NotifySocket) -> None:
    audio = CountingThread()
    audio.running.set()  # progress keeps coming: only the loop is stuck
    wd = Watchdog(Notifier(), lambda: audio.count, INTERVAL_S)
    task = asyncio.create_task(wd.run(), name="watchdog")
    try:
        await notify_socket.until(lambda _: len(notify_socket.watchdog_pings()) >= 2, 10, "2 pings")
        t0 = time.monotonic()
        time.sleep(2.0)  # noqa: ASYNC251 -- wedges the loop on purpose
        t1 = time.monotonic()
        during = [t for t in notify_socket.watchdog_pings() if t0 + 0.5 < t < t1]
        assert during == []
        n = len(notify_socket.watchdog_pings())
        await notify_socket.until(
            lambda _: len(notify_socket.watchdog_pings()) >= n + 2, 10, "pings after unblock"
        )
    finally:
        task.cancel()
        audio.close()


@pytest.mark.unit
def test_no_watchdog_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert Watchdog.from_environment(Notifier(), lambda: 0) is None
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    assert Watchdog.from_environment(Notifier(), lambda: 0) is None  # no WATCHDOG_USEC


@pytest.mark.integration
async def test_real_microphone_stream_feeds_the_watchdog(
    notify_socket: NotifySocket, sound_card: object
) -> None:
    """Progress = PortAudio input callbacks handed to the loop (the house bridge), via the virtual card."""
    import sounddevice as sd

    sd._terminate()  # re-enumerate: the virtual card may have started after import
    sd._initialize()
    loop = asyncio.get_running_loop()
    blocks = 0

    def on_block() -> None:
        nonlocal blocks
        blocks += 1

    def callback(indata: object, frames: int, t: object, status: object) -> None:
        loop.call_soon_threadsafe(on_block)

    wd = Watchdog(Notifier(), lambda: blocks, INTERVAL_S)
    stream = sd.InputStream(
        samplerate=16000,
        channels=1,
        dtype="int16",
        blocksize=320,
        device="default",
        callback=callback,
    )
    stream.start()
    task = asyncio.create_task(wd.run(), name="watchdog")
    try:
        await notify_socket.until(lambda _: len(notify_socket.watchdog_pings()) >= 3, 20, "3 pings")
        stream.stop()  # the audio path stops delivering
        await asyncio.sleep(5 * wd.period_s)
        assert await _quiet_for(notify_socket, 8 * wd.period_s) == 0
        stream.start()
        n = len(notify_socket.watchdog_pings())
        await notify_socket.until(
            lambda _: len(notify_socket.watchdog_pings()) >= n + 3, 20, "pings after restart"
        )
    finally:
        task.cancel()
        stream.close()


@pytest.mark.unit
async def test_startup_pinger_covers_a_rebuild_then_gives_up(notify_socket: NotifySocket) -> None:
    """While the parts are rebuilt after RELOADING=1 the pings go on, for at most limit_s."""
    pinger = StartupPinger.from_environment(Notifier(), limit_s=1.0)
    assert pinger is not None and pinger.period_s == pytest.approx(INTERVAL_S / 2)
    pinger.start()
    assert await _quiet_for(notify_socket, 0.8) >= 3  # every 0.2 s during the rebuild
    await asyncio.sleep(0.3)  # past limit_s: a hung rebuild must let systemd act
    assert await _quiet_for(notify_socket, 0.8) == 0
    pinger.stop()


@pytest.mark.unit
async def test_startup_pinger_stops_at_ready(notify_socket: NotifySocket) -> None:
    pinger = StartupPinger.from_environment(Notifier(), limit_s=30.0)
    assert pinger is not None
    pinger.start()
    assert await _quiet_for(notify_socket, 0.5) >= 2
    pinger.stop()
    await asyncio.sleep(0.05)  # a datagram already sent may still arrive
    assert await _quiet_for(notify_socket, 0.6) == 0


@pytest.mark.unit
def test_no_startup_pinger_without_a_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent")
    assert StartupPinger.from_environment(Notifier(), limit_s=30.0) is None
