"""The task that notices due timers and alarms and hands them to the appliance as `TimerRang`.

It wakes at the soonest due time, but at least every `TICK_S`: the wall clock can jump (alarms) and
another process can change the file (`livespeaker timers cancel`), and neither wakes a sleeping
task. Missed items (beyond the grace) are logged by the book and kept in its history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from device.events import TimerRang
from device.timers.book import TimerBook, claim_writer
from device.timers.model import Outcome

log = logging.getLogger(__name__)

TICK_S = 0.5
"""Longest sleep between checks."""


async def run(
    book: TimerBook,
    post: Callable[[TimerRang], None],
    *,
    lead_s: float = 0.0,
    tick_s: float = TICK_S,
) -> None:
    """Check the book until cancelled; post one TimerRang per check that found something to ring.

    `lead_s`: ring that much before the due time, so the ring is *heard* on time (the speaker's
    output latency: what is queued now reaches the ear that much later). The process running it
    becomes the one writer of the book's file (device.timers.book.claim_writer) and applies the
    cancels other processes request."""
    writer = claim_writer(book.path.parent)
    if not writer:
        log.error(
            "another process holds the timers of %s: is a second daemon running on this "
            "state_dir? Timers ring here, cancel requests are left to it",
            book.path.parent,
        )
    while True:
        left: float | None = tick_s
        try:
            book.refresh()
            if writer:
                book.apply_requests()
            rang = [d for d in book.check(lead_s) if d.outcome is Outcome.RANG]
            if rang:
                post(
                    TimerRang(
                        tuple(d.item.id for d in rang),
                        tuple(d.item.name for d in rang),
                        max(0.0, *(d.at_wall - d.due_wall for d in rang)),
                    )
                )
            left = book.seconds_to_next(lead_s)
        except Exception:  # a component boundary: the speaker goes on, timers try again
            log.exception("checking timers failed; trying again in %.1f s", tick_s)
        await asyncio.sleep(tick_s if left is None else max(0.0, min(left, tick_s)))
