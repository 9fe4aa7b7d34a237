"""A bounded asyncio queue that drops the oldest item when full, and counts what it dropped.

Real-time audio must never block on a slow consumer: a consumer that falls behind loses the oldest
audio (it would be stale anyway) and the drop is counted for the periodic summary in the log.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Bounded FIFO for one consumer; put_nowait never blocks, get() waits. Loop-thread only."""

    def __init__(self, maxsize: int, name: str = "") -> None:
        if maxsize <= 0:
            raise ValueError("maxsize must be positive")
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        """Items discarded because the queue was full (monotonic counter)."""
        self.delivered = 0
        """Items put into the queue (including ones later dropped)."""
        self._items: collections.deque[T] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        """Append; if full, the oldest item is dropped and counted."""
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.delivered += 1
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def get_nowait(self) -> T:
        """Pop the oldest item; raises asyncio.QueueEmpty if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> T:
        """Wait for and pop the oldest item."""
        while not self._items:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and self._items:
                    # We were woken but cancelled: pass the wake-up on.
                    self._wake_next()
                raise
        return self._items.popleft()

    def _wake_next(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def clear(self) -> int:
        """Drop everything queued (not counted as overflow); returns how many were dropped."""
        n = len(self._items)
        self._items.clear()
        return n
