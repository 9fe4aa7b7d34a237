"""The scheduler task on an injected clock: posts TimerRang once per due item, never twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device.bootclock import Instant
from device.events import TimerRang
from device.timers import scheduler
from device.timers.book import TimerBook
from tests.timers.test_book import TZ, Clock

pytestmark = pytest.mark.unit


async def test_posts_each_due_item_once_and_skips_missed_ones(tmp_path: Path) -> None:
    clock = Clock()
    book = TimerBook(tmp_path, grace_s=60, clock=clock, tz=TZ)
    pasta = book.add_timer(10, "pasta")
    alarm = book.add_alarm(6, 51)
    posted: asyncio.Queue[TimerRang] = asyncio.Queue()
    task = asyncio.create_task(scheduler.run(book, posted.put_nowait, tick_s=0.01))
    try:
        await asyncio.sleep(0.05)
        assert posted.empty()
        clock.run(10)
        got = await asyncio.wait_for(posted.get(), 5)
        assert got.ids == (pasta.id,) and got.names == ("pasta timer",)
        clock.jump_wall(3600)  # over the alarm by far: missed, not rung
        await asyncio.sleep(0.1)
        assert posted.empty()
        assert book.history()[0].item.id == alarm.id
    finally:
        task.cancel()


async def test_a_failing_check_is_logged_and_retried_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    book = TimerBook(tmp_path, clock=clock, tz=TZ)
    book.add_timer(1, "tea")
    broken = [True]

    def flaky() -> Instant:
        if broken[0]:
            raise RuntimeError("clock unreadable")
        return clock()

    book.clock = flaky
    posted: asyncio.Queue[TimerRang] = asyncio.Queue()
    task = asyncio.create_task(scheduler.run(book, posted.put_nowait, tick_s=0.01))
    try:
        await asyncio.sleep(0.05)
        assert not task.done() and "checking timers failed" in caplog.text
        clock.run(1)
        broken[0] = False
        got = await asyncio.wait_for(posted.get(), 5)
        assert got.names == ("tea timer",)
    finally:
        task.cancel()
