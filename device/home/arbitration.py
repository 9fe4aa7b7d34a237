"""Wake arbitration: exactly one speaker of the home answers a wake word that several heard.

Every speaker that hears the wake word announces a `Claim` on the broker and, unless it is already
in a conversation, waits `window_s` for the others' claims. Then each one applies the same rule to
the same claims, so they agree without a leader:

1. a speaker already in a conversation keeps it (its claim is `busy`), and so does one that has
   already won this wake word (it announces `busy` when it starts answering): a speaker that
   hears the wake word late (it was quieter, its detector fired a frame or two later) yields;
2. otherwise the loudest wake word wins: the speaker the person is nearest to, or facing, hears
   it loudest (`level_db`, the wake word's RMS at that microphone, in 1 dB steps);
3. ties: the higher wake score, then the smaller speaker id.

Claims are compared by arrival time on this speaker's clock (no clock sync between speakers):
a claim counts if it arrived from `window_s` before this speaker's own claim (it heard the wake
word first and is still waiting) to the decision; a busy claim counts for `LOOKBACK_S` before.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass

LOOKBACK_S = 2.0
"""A speaker that started answering this long ago still owns the wake word (Home Assistant drops
duplicate wake-ups for 2 s as well)."""
LEVEL_STEP_DB = 1.0
"""Levels closer than this are a tie (the same person at the same distance)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One speaker heard the wake word (or, `busy`, owns the conversation it belongs to)."""

    speaker: str
    level_db: float
    score: float
    busy: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> Claim:
        """Parse a claim (ValueError when it is not one)."""
        try:
            d = json.loads(payload)
            return cls(str(d["speaker"]), float(d["level_db"]), float(d["score"]), bool(d["busy"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a wake claim: {payload!r:.80}") from exc

    def rank(self) -> tuple[bool, float, float]:
        """Higher is better placed (the speaker id breaks a tie, smaller first)."""
        return (self.busy, round(self.level_db / LEVEL_STEP_DB), round(self.score, 3))


def winner(claims: list[Claim]) -> Claim:
    """The claim that answers: busy first, then the loudest, the best score, the smallest id."""
    best = max(c.rank() for c in claims)
    return min((c for c in claims if c.rank() == best), key=lambda c: c.speaker)


class Arbitration:
    """The other speakers' recent claims, and the decision for this speaker's own (no I/O)."""

    def __init__(self, me: str, window_s: float) -> None:
        self.me = me
        self.window_s = window_s
        self._heard: deque[tuple[float, Claim]] = deque(maxlen=64)

    def heard(self, claim: Claim, now: float) -> None:
        """Another speaker's claim arrived (this speaker's own echoes are ignored)."""
        if claim.speaker != self.me:
            self._heard.append((now, claim))

    def owner(self, now: float) -> Claim | None:
        """Another speaker that owns a conversation started within LOOKBACK_S, if any."""
        busy = [c for t, c in self._heard if c.busy and now - t <= LOOKBACK_S]
        return winner(busy) if busy else None

    def decide(self, mine: Claim, claimed_at: float, now: float) -> Claim:
        """The winner among this speaker's claim (made at `claimed_at`) and the others'."""
        if mine.busy:
            return mine
        if (owner := self.owner(now)) is not None:
            return owner
        rivals = [c for t, c in self._heard if t >= claimed_at - self.window_s and not c.busy]
        return winner([mine, *rivals])
