"""Notifier against a real NOTIFY_SOCKET datagram socket, through systemd-python's sd_notify."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from device.service.notify import Notifier, watchdog_interval
from tests.service.notify_socket import NotifySocket

pytestmark = pytest.mark.unit


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        yield ns


def test_lifecycle_messages_arrive_in_order(notify_socket: NotifySocket) -> None:
    n = Notifier()
    assert n.enabled
    n.ready("Listening for 'hey jarvis'")
    n.status("Answering")
    n.status("Answering")  # unchanged: not resent
    n.status("Listening for 'hey jarvis'")
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    n.ready()
    n.watchdog()
    n.stopping("Stopping")
    msgs = notify_socket.wait_for(lambda m: len(m) >= 7, 5, "7 messages")
    assert [m.raw.splitlines()[0] for m in msgs] == [
        "READY=1",
        "STATUS=Answering",
        "STATUS=Listening for 'hey jarvis'",
        "RELOADING=1",
        "READY=1",
        "WATCHDOG=1",
        "STOPPING=1",
    ]
    assert msgs[0].fields["STATUS"] == "Listening for 'hey jarvis'"
    assert 0 <= int(msgs[3].fields["MONOTONIC_USEC"]) - before < 5_000_000
    assert msgs[6].fields["STATUS"] == "Stopping"
    time.sleep(0.2)
    assert len(notify_socket.snapshot()) == 7


def test_nothing_is_sent_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    with NotifySocket() as ns:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        n = Notifier()
        assert not n.enabled
        n.ready("x")
        n.status("y")
        n.watchdog()
        n.stopping()
        # Proof the socket works: with the variable set, the same calls do deliver.
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        Notifier().status("delivered")
        ns.wait_for(lambda m: len(m) >= 1, 5, "one message")
        time.sleep(0.2)
        assert [m.raw for m in ns.snapshot()] == ["STATUS=delivered"]


def test_watchdog_interval_from_environment() -> None:
    import os

    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
