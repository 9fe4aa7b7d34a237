"""Timers and alarms on an injected clock: restarts, downtime, clock jumps, persistence."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device.bootclock import Instant
from device.statefile import StateFile
from device.timers.book import FILENAME, ClockNotSetError, TimerBook
from device.timers.model import Kind, Outcome, next_occurrence

pytestmark = pytest.mark.unit

TZ = ZoneInfo("Europe/Berlin")
# Thursday 2026-12-03 06:50:00 in Berlin
T0 = dt.datetime(2026, 12, 3, 6, 50, tzinfo=TZ).timestamp()


class Clock:
    """The three clocks, moved by hand."""

    def __init__(self, wall: float = T0, boot: str = "boot-a", boottime: float = 100.0) -> None:
        self.t = Instant(wall, boot, boottime)

    def __call__(self) -> Instant:
        return self.t

    def run(self, seconds: float) -> None:
        """Time passes: every clock moves on."""
        t = self.t
        assert t.boottime is not None
        self.t = Instant(t.wall + seconds, t.boot_id, t.boottime + seconds)

    def jump_wall(self, seconds: float) -> None:
        """Only the wall clock is set (NTP, a user, a wrong RTC)."""
        self.t = Instant(self.t.wall + seconds, self.t.boot_id, self.t.boottime)

    def reboot(self, down_s: float, wall_error_s: float = 0.0, up_s: float = 20.0) -> None:
        """Down for down_s; the new boot has run up_s, its wall clock off by wall_error_s."""
        self.t = Instant(self.t.wall + down_s + up_s + wall_error_s, "boot-b", up_s)


def book(tmp_path: Path, clock: Clock, grace_s: float = 300.0) -> TimerBook:
    return TimerBook(tmp_path, grace_s=grace_s, clock=clock, tz=TZ)


def outcomes(b: TimerBook) -> list[tuple[str, Outcome]]:
    return [(d.item.id, d.outcome) for d in b.check()]


def test_a_timer_rings_once_when_its_duration_has_passed(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    t = b.add_timer(540, "pasta")
    assert t.name == "pasta timer"
    clock.run(539.9)
    assert outcomes(b) == []
    assert b.seconds_to_next() == pytest.approx(0.1)
    clock.run(0.1)
    assert outcomes(b) == [(t.id, Outcome.RANG)]
    assert outcomes(b) == [] and b.pending() == []
    assert b.history()[0].outcome is Outcome.RANG


def test_timers_ignore_wall_clock_jumps_within_a_boot(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    t = b.add_timer(60)
    clock.jump_wall(+3600)  # NTP sync an hour ahead: not due
    clock.run(30)
    assert outcomes(b) == []
    clock.jump_wall(-7200)  # set back two hours: still due at 60 s
    clock.run(30)
    assert outcomes(b) == [(t.id, Outcome.RANG)]


def test_several_at_once_each_ring_in_order(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    eggs = b.add_timer(300, "eggs")
    pasta = b.add_timer(540, "pasta")
    rice = b.add_timer(300, "rice")
    assert [i.id for i in b.pending()][-1] == pasta.id
    clock.run(300)
    assert sorted(outcomes(b)) == sorted([(eggs.id, Outcome.RANG), (rice.id, Outcome.RANG)])
    assert [i.id for i in b.pending()] == [pasta.id]


def test_a_restart_in_the_same_boot_loses_nothing_and_rings_on_time(tmp_path: Path) -> None:
    clock = Clock()
    t = book(tmp_path, clock).add_timer(120, "tea")
    on_disk = json.loads((tmp_path / FILENAME).read_text())
    assert [p["id"] for p in on_disk["pending"]] == [t.id]
    clock.run(60)  # the daemon was killed and restarted meanwhile
    again = book(tmp_path, clock)
    assert [i.label for i in again.pending()] == ["tea"]
    clock.run(59.5)
    assert outcomes(again) == []
    clock.run(0.5)
    assert outcomes(again) == [(t.id, Outcome.RANG)]


def test_after_a_reboot_a_timer_that_ran_out_rings_within_grace_else_is_missed(
    tmp_path: Path,
) -> None:
    clock = Clock()
    b = book(tmp_path, clock, grace_s=300)
    recent = b.add_timer(100, "recent")
    old = b.add_timer(10, "old")
    clock.reboot(down_s=300)  # old ran out 310 s before the check, recent 210 s before
    after = book(tmp_path, clock, grace_s=300)
    got = dict(outcomes(after))
    assert got == {recent.id: Outcome.RANG, old.id: Outcome.MISSED}
    missed = [d for d in after.history() if d.outcome is Outcome.MISSED]
    assert [d.item.label for d in missed] == ["old"]


def test_after_a_reboot_with_the_clock_still_behind_nothing_rings_early(tmp_path: Path) -> None:
    clock = Clock()
    t = book(tmp_path, clock).add_timer(600, "bread")
    clock.reboot(down_s=60, wall_error_s=-86400)  # fake-hwclock a day behind
    b = book(tmp_path, clock)
    assert outcomes(b) == []  # counted by the time since boot only: 20 s
    clock.run(500)
    assert outcomes(b) == []
    clock.jump_wall(+86400)  # NTP: the true time, 580 s after it was set
    assert outcomes(b) == []
    clock.run(20)
    assert outcomes(b) == [(t.id, Outcome.RANG)]


def test_an_alarm_rings_at_its_minute_in_local_time(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    a = b.add_alarm(6, 51, label="wake up")
    assert a.kind is Kind.ALARM and a.next_at == T0 + 60
    clock.run(59.9)
    assert outcomes(b) == []
    clock.run(0.1)
    assert outcomes(b) == [(a.id, Outcome.RANG)]
    assert b.pending() == []  # a one-off


def test_alarm_clock_jumps_neither_double_fire_nor_lose(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    daily = b.add_alarm(7, 0, weekdays=(0, 1, 2, 3, 4, 5, 6))
    clock.run(600)  # 07:00
    assert outcomes(b) == [(daily.id, Outcome.RANG)]
    clock.jump_wall(-1800)  # back to 06:30: 07:00 today again, but it rang already
    clock.run(3600)
    assert outcomes(b) == []
    (again,) = b.pending()
    assert dt.datetime.fromtimestamp(again.next_at, TZ) == dt.datetime(2026, 12, 4, 7, 0, tzinfo=TZ)
    # A backward jump before it: it waits, never rings early.
    clock.jump_wall(-6 * 3600)  # 01:30 today
    clock.run(24 * 3600)  # 01:30 tomorrow
    assert outcomes(b) == []
    clock.run(5.5 * 3600)  # 07:00 tomorrow
    assert outcomes(b) == [(daily.id, Outcome.RANG)]
    # A forward jump over the next one, within grace: rings once, late.
    clock.jump_wall(24 * 3600 + 120)
    assert outcomes(b) == [(daily.id, Outcome.RANG)]
    assert outcomes(b) == []


def test_an_alarm_jumped_over_by_far_is_reported_missed_not_lost(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock, grace_s=300)
    a = b.add_alarm(7, 0)
    clock.jump_wall(3 * 3600)
    assert outcomes(b) == [(a.id, Outcome.MISSED)]
    assert b.history()[0].item.id == a.id


def test_no_alarm_is_set_by_a_clock_known_to_be_behind(tmp_path: Path) -> None:
    clock = Clock()
    book(tmp_path, clock).add_timer(5)
    clock.reboot(down_s=10, wall_error_s=-30 * 86400)
    b = book(tmp_path, clock)
    with pytest.raises(ClockNotSetError):
        b.add_alarm(7, 0)
    clock.jump_wall(30 * 86400)  # synced: 06:50:30
    seven = dt.datetime(2026, 12, 3, 7, 0, tzinfo=TZ).timestamp()
    assert b.add_alarm(7, 0).next_at == seven


def test_cancel_one_all_and_snooze(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    one, two, three = b.add_timer(60, "a"), b.add_timer(120, "b"), b.add_alarm(8, 0)
    assert b.cancel(one.id) == one and b.cancel("nope") is None
    assert {i.id for i in b.pending()} == {two.id, three.id}
    assert b.snooze(9) is None  # nothing rang
    clock.run(120)
    assert outcomes(b) == [(two.id, Outcome.RANG)]
    snoozed = b.snooze(9)
    assert snoozed is not None and snoozed.label == "b" and snoozed.duration_s == 540
    assert {i.id for i in b.cancel_all()} == {three.id, snoozed.id}
    assert b.pending() == []
    assert {d.outcome for d in b.history()} == {Outcome.CANCELLED, Outcome.RANG}


def test_another_process_cancelling_is_seen_after_refresh(tmp_path: Path) -> None:
    clock = Clock()
    daemon = book(tmp_path, clock)
    t = daemon.add_timer(60)
    cli = TimerBook(tmp_path, clock=clock, tz=TZ)
    assert cli.cancel(t.id) is not None
    StateFile.at(tmp_path / FILENAME).flush()
    daemon.refresh()
    clock.run(61)
    assert outcomes(daemon) == []


def test_an_unreadable_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text("{not json")
    b = book(tmp_path, Clock())
    assert b.pending() == []
    b.add_timer(5)
    assert json.loads((tmp_path / FILENAME).read_text())["pending"][0]["duration_s"] == 5


def test_next_occurrence_weekdays_and_dst() -> None:
    # From Thursday 2026-12-03 the next Saturday (5) is 2026-12-05.
    sat = next_occurrence(9, 30, (5,), T0, TZ)
    assert dt.datetime.fromtimestamp(sat, TZ) == dt.datetime(2026, 12, 5, 9, 30, tzinfo=TZ)
    # Across the spring DST change (2027-03-28 in Berlin): 07:00 local, not 07:00 + 1 h.
    before = dt.datetime(2027, 3, 27, 12, 0, tzinfo=TZ).timestamp()
    at = next_occurrence(7, 0, (), before, TZ)
    assert dt.datetime.fromtimestamp(at, TZ).hour == 7
    assert at - before == pytest.approx(18 * 3600)  # 19 h of clock time minus the lost hour
    with pytest.raises(ValueError):
        next_occurrence(24, 0, (), T0, TZ)


def test_a_lead_rings_that_much_early_and_no_earlier(tmp_path: Path) -> None:
    clock = Clock()
    b = book(tmp_path, clock)
    t = b.add_timer(5)
    clock.run(4.85)
    assert b.seconds_to_next(lead_s=0.12) == pytest.approx(0.03)
    assert outcomes(b) == [] and b.check(lead_s=0.12) == []
    clock.run(0.031)
    (done,) = b.check(lead_s=0.12)
    assert done.item.id == t.id and done.outcome is Outcome.RANG
    assert done.due_wall - done.at_wall == pytest.approx(0.119)
