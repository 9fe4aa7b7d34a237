"""The real `livespeaker run` process, muted, rings a timer: the microphone stays closed, so
systemd's watchdog must be fed by the loop heartbeat (as while muted), or a long ring would get
the daemon killed. STATUS= follows: ringing with the microphone off, then muted again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.app.memory import MuteStore
from device.timers.book import TimerBook
from tests.service.test_daemon_notify import WATCHDOG_S, Daemon, start_daemon

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

__all__ = ["start_daemon"]  # the fixture, used by name below

RINGING_MUTED = "Ringing, microphone off (press the button to stop)"
MUTED = "Muted (microphone off)"


def test_ringing_while_muted_keeps_feeding_the_watchdog(
    start_daemon: Callable[[str], Daemon], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    MuteStore(state).save(True)
    TimerBook(state).add_timer(6.0, "tea")
    proc, ns, _ = start_daemon("[timers]\nring_timeout_s = 6.0\n")
    ns.wait_for(
        lambda m: any(x.fields.get("STATUS") == RINGING_MUTED for x in m), 120, RINGING_MUTED
    )
    before = len(ns.watchdog_pings())
    time.sleep(2.5 * WATCHDOG_S)
    pings = len(ns.watchdog_pings()) - before
    statuses = [m.fields["STATUS"] for m in ns.snapshot() if "STATUS" in m.fields]
    assert statuses[-1] == RINGING_MUTED, statuses  # still ringing all that time
    assert pings >= 3, f"{pings} watchdog pings in {2.5 * WATCHDOG_S} s of ringing while muted"
    ns.wait_for(lambda m: [x for x in m if "STATUS" in x.fields][-1].fields["STATUS"] == MUTED, 20)
    assert proc.poll() is None
