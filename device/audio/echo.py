"""Echo control by gating: in half duplex the upload is closed while the speaker plays (plus a tail).

    gate = EchoGate(cfg.audio.echo_mode, cfg.audio.echo_tail_ms,
                    captured_at=mic.captured_at, heard_until=lambda: speaker.heard_until,
                    reply_heard_until=lambda: speaker.reply_heard_until,
                    earcon_tail_ms=cfg.audio.earcon_tail_ms)
    upload = mic.add_consumer("upload", 50, gate=gate)      # closed while the reply plays
    wake = mic.add_consumer("wakeword", 50)                 # always open: "Hey Jarvis, stop" works

The gate is evaluated once per microphone block on the loop: a block is withheld if it was
captured (`captured_at`) before the speaker's last sound so far reaches the DAC (`heard_until`)
plus the tail: the full tail after an answer or a ring (`reply_heard_until`), a short one after
an earcon, so a user who answers the wake chime at once keeps the start of the question.
Counting from capture, a block that reaches the loop late, or a sound played before the gate
was first asked (the wake chime while connecting), cannot slip its echo through; and a
block captured while a sound only waits in the queue (an output stream slow to start on a busy
machine) is not withheld for it: it cannot hold the echo of a sound not yet played. That was a
question lost in CI: 116 blocks (2.3 s) withheld behind a wake chime that started late.
Without those two clocks (`is_playing` only) it is closed while anything is queued and for the
tail after. The clock is injectable for tests. full_duplex keeps it open for headsets or hardware
echo cancellation, and aec keeps it open because the microphone's blocks are already cancelled
(device.audio.aec), once the canceller is trusted with the upload: it has learned the room and the
echo holds steady against its reference (before that, the first answers after a start, it gates
as half duplex does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from device.config import EchoMode
from device.events import AudioBlock


class EchoGate:
    """Callable gate for `Microphone.add_consumer(..., gate=)`: True = deliver the block."""

    def __init__(
        self,
        mode: EchoMode,
        tail_ms: int,
        is_playing: Callable[[], bool] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        learned: Callable[[], bool] | None = None,
        captured_at: Callable[[AudioBlock], float] | None = None,
        heard_until: Callable[[], float] | None = None,
        reply_heard_until: Callable[[], float] | None = None,
        earcon_tail_ms: int | None = None,
    ) -> None:
        """Either `heard_until` (the speaker's DAC clock, with `captured_at`) or, without
        it, `is_playing()` (audio queued or on its way: closed while it is). `learned()`: the
        echo canceller (echo_mode "aec") is trusted with the upload; until it is, the gate closes
        while the speaker plays, as in half duplex. `captured_at(block)`: when the block's
        first sample was captured (the microphone's clock); the tail then counts from there, not from when the block reached the loop, so a slow capture path
        cannot let the end of the echo through. `heard_until()`: when the speaker's last sound
        was heard (monotonic), so a sound played before the gate was first asked (the wake
        chime while connecting) still closes it for its tail. `reply_heard_until()`: the same for
        the last sound that was no earcon; with it, the full tail follows only replies (and rings),
        and `earcon_tail_ms` (shorter) an earcon's end: a user who answers the wake chime at once
        is not cut off by a tail meant for the echo of a long answer."""
        if is_playing is None and heard_until is None:
            raise ValueError("EchoGate needs is_playing or heard_until")
        self.mode = mode
        self._learned = learned
        self._captured_at = captured_at
        self._heard_until = heard_until
        self._reply_heard_until = reply_heard_until
        self.tail_s = tail_ms / 1000.0
        earcon_s = self.tail_s if earcon_tail_ms is None else earcon_tail_ms / 1000.0
        self.earcon_tail_s = min(earcon_s, self.tail_s)
        self._is_playing = is_playing
        self._clock = clock
        self._last_playing: float | None = None
        self.blocked = 0
        """Blocks withheld from the consumer so far."""

    def talks_over(self) -> bool:
        """Whether the upload stays open while the speaker plays (full duplex, or aec once the
        canceller is trusted with the upload): the appliance's streaming and LEDs follow it."""
        if self.mode is EchoMode.AEC:
            return self._learned is not None and self._learned()
        return self.mode.streams_while_playing

    def is_open(self, captured: float | None = None) -> bool:
        """Whether microphone audio (captured at `captured`, monotonic; None: now) may go to
        the server."""
        if self.talks_over():
            return True
        now = self._clock()
        at = now if captured is None else min(captured, now)
        last: float | None
        if self._heard_until is not None:
            # A sound written is heard by heard_until (in the future while it plays); one still
            # queued will be heard after now, so after this block.
            last = self._heard_until()
            if self._reply_heard_until is not None:
                reply = self._reply_heard_until()
                if reply > 0.0 and at - reply < self.tail_s:
                    return False
                return last <= 0.0 or at - last >= self.earcon_tail_s
        else:
            assert self._is_playing is not None
            if self._is_playing():
                self._last_playing = now
                return False
            last = self._last_playing
        return last is None or last <= 0.0 or at - last >= self.tail_s

    def __call__(self, block: AudioBlock) -> bool:
        captured = None if self._captured_at is None else self._captured_at(block)
        if self.is_open(captured):
            return True
        self.blocked += 1
        return False
