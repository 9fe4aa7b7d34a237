"""The ring: one generated cycle (device.audio.earcons, Earcon.RING) repeated on the speaker.

`start()` pauses whatever was playing (an answer keeps its place: the speaker's alert) and keeps
one to two cycles queued, paced on the loop's clock, until `stop()`: the ring is silent within one
output block and paused speech goes on. Dropping an answer instead is the appliance's decision
(its transition table). While it rings the speaker plays at least [timers] volume_floor. Needs
no network and ignores audio.earcons (a ring is not a courtesy sound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from device.app.ports import SpeakerPort
from device.audio import earcons
from device.events import MODEL_RATE

log = logging.getLogger(__name__)


class Ringer:
    """Rings on one speaker; start/stop from the event loop."""

    def __init__(self, speaker: SpeakerPort, volume_floor: int) -> None:
        self._speaker = speaker
        self._floor = volume_floor
        self._task: asyncio.Task[None] | None = None
        self.cycles = 0
        """Ring cycles queued so far (all rings)."""

    @property
    def ringing(self) -> bool:
        """True from start() until stop()."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Ring now (no-op when it already rings)."""
        if self.ringing:
            return
        self._speaker.start_alert()
        self._speaker.hold_volume_floor(self._floor)
        self._play()  # at once, not at the task's first turn
        self._task = asyncio.get_running_loop().create_task(self._repeat(), name="ringer")

    def stop(self) -> None:
        """Silence it (within one output block) and give the speaker its own volume back; paused
        speech goes on."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._speaker.hold_volume_floor(0)
        self._speaker.stop_alert()

    async def close(self) -> None:
        """Stop and wait for the task to end."""
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _play(self) -> None:
        self._speaker.play_alert(earcons.pcm(earcons.Earcon.RING))
        self.cycles += 1

    async def _repeat(self) -> None:
        loop = asyncio.get_running_loop()
        cycle_s = len(earcons.render(earcons.Earcon.RING)) / MODEL_RATE
        self._play()  # a second cycle queued behind the first: never a gap
        next_at = loop.time() + cycle_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self._play()
            next_at += cycle_s
