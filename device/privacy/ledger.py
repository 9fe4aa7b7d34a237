"""The upload ledger: one JSON line per connection to the Live API, kept in state_dir.

Each record says when a connection opened, what opened it (the wake word with its score, the
enrolled voice and whether the second stage accepted it, the button, a command), how many seconds of microphone audio went up on it, the
payload bytes up and down, and how it ended. Never audio, never words.

One record per connection, not per conversation: a conversation the server moves to a new
connection (goAway) has one record per connection, all with the same `conversation` id, the first
ending in `handover`. Only connections the server accepted (setupComplete) are recorded: a refused
one carried the setup (model, voice, instructions) but no audio.

Bounded by age (privacy.ledger_days, by the wall clock: a record dated in the future by a clock
that was behind is kept until it ages out) and by size (privacy.ledger_max_kb, oldest first),
pruned on every write. Written like every state file (device.statefile): atomically, on a worker
thread when called on the event loop, and never fatal: a failed write keeps the records in memory
(bounded) for the next write, and is reported like any state-dir problem. Written by root (doctor's
API check, `ask` under sudo), the file goes to the state dir's owner, the service's user.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from device.config import PrivacyConfig
from device.events import MIC_RATE, EndCause, Opened, Trigger
from device.statefile import off_loop, problems, write_atomic

log = logging.getLogger(__name__)

FILENAME = "upload-ledger.jsonl"
MAX_UNWRITTEN = 1000
"""Records kept in memory while the state dir cannot be written (the oldest are dropped)."""
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(path, threading.Lock())


def _owned_like_its_dir(path: Path) -> None:
    """Run as root (`sudo livespeaker doctor`, provisioning), give the file to the state dir's
    owner: a root-owned 0600 ledger would leave the service unable to read, so to write, it."""
    if os.geteuid() != 0:
        return
    d = path.parent.stat()
    if path.stat().st_uid != d.st_uid:
        os.chown(path, d.st_uid, d.st_gid)


class Ending(StrEnum):
    """How a connection ended."""

    CLOSED = "closed"
    """The device closed it: the conversation was over (silence, goodbye, button, shutdown)."""
    HANDOVER = "handover"
    """The server asked to move (goAway): the conversation went on on a new connection."""
    FAILED = "failed"
    """It failed (`error` names the kind: no_network, quota, server, ...)."""


@dataclass(frozen=True)
class Upload:
    """One connection: what opened it and what went over it (no audio, no words)."""

    opened_at: float
    """Unix time the connection was ready (setupComplete)."""
    conversation: str
    """Shared by the connections of one conversation (goAway handovers)."""
    connection: int
    """1 for the conversation's first connection, 2 after the first handover, ..."""
    trigger: Trigger
    wake_word: str | None
    score: float | None
    voice: str | None
    resumed: bool
    """Opened with a resumption handle (the server remembered the earlier conversation)."""
    duration_s: float
    audio_s: float
    """Seconds of microphone audio sent (16 kHz mono)."""
    bytes_up: int
    """Payload sent: microphone audio, typed text, tool results (before base64/JSON/TLS)."""
    bytes_down: int
    """Payload received: the model's audio and the transcripts (before base64/JSON/TLS)."""
    ended: Ending
    error: str | None = None
    """The error kind, when it failed."""
    cause: EndCause | None = None
    """Why the device ended the conversation (silence, button, asked, ...), when it did."""
    second_stage: bool = False
    """The wake word's second stage accepted it (its base score was below the threshold)."""
    micro: bool = False
    """The microWakeWord model heard it (the base score was below the threshold)."""

    @classmethod
    def make(
        cls,
        opened: Opened,
        *,
        opened_at: float,
        conversation: str,
        connection: int,
        resumed: bool,
        duration_s: float,
        audio_bytes: int,
        bytes_up: int,
        bytes_down: int,
        ended: Ending,
        error: str | None = None,
        cause: EndCause | None = None,
    ) -> Upload:
        """A record for a connection that is over."""
        return cls(
            opened_at=round(opened_at, 3),
            conversation=conversation,
            connection=connection,
            trigger=opened.trigger,
            wake_word=opened.wake_word,
            score=opened.score,
            voice=opened.voice,
            resumed=resumed,
            duration_s=round(duration_s, 3),
            audio_s=round(audio_bytes / 2 / MIC_RATE, 3),
            bytes_up=bytes_up,
            bytes_down=bytes_down,
            ended=ended,
            error=error,
            cause=cause,
            second_stage=opened.second_stage,
            micro=opened.micro,
        )

    def to_json(self) -> str:
        """One line of the ledger file."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Upload:
        """Parse a ledger line (ValueError/KeyError/TypeError when it is not one)."""
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("not a record")
        d["trigger"] = Trigger(d["trigger"])
        d["ended"] = Ending(d["ended"])
        d["cause"] = None if d.get("cause") is None else EndCause(d["cause"])
        return cls(**d)


@dataclass(frozen=True)
class Summary:
    """What the ledger says about a recent period."""

    conversations: int
    connections: int
    audio_s: float
    bytes_up: int


def summarize(records: Iterable[Upload], since: float) -> Summary:
    """Totals over the records opened at or after `since` (unix time); the doctor's API checks
    count as connections, not conversations."""
    recent = [r for r in records if r.opened_at >= since]
    return Summary(
        len({r.conversation for r in recent if r.trigger is not Trigger.DOCTOR}),
        len(recent),
        sum(r.audio_s for r in recent),
        sum(r.bytes_up for r in recent),
    )


class Ledger:
    """The ledger file in a state directory: append (off the loop), read, clear."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        cfg: PrivacyConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(state_dir).absolute() / FILENAME
        self._cfg = cfg or PrivacyConfig()
        self._clock = clock
        self._lock = _lock_for(self.path)
        self._unwritten: list[Upload] = []

    def add(self, record: Upload) -> None:
        """Append a record: on a worker thread when called on the event loop. Never raises."""
        with self._lock:
            self._unwritten.append(record)
            del self._unwritten[:-MAX_UNWRITTEN]
        off_loop(self.flush)

    def flush(self) -> None:
        """Write the records not on disk yet, pruning old ones (blocking). Never raises."""
        with self._lock:
            if not self._unwritten:
                return
            try:
                kept = self._prune(self._read_disk() + self._unwritten)
                write_atomic(self.path, "".join(r.to_json() + "\n" for r in kept))
                _owned_like_its_dir(self.path)
            except OSError as exc:
                problems.failed(self.path, exc)
                return
            self._unwritten.clear()
        problems.ok(self.path)

    def records(self) -> list[Upload]:
        """Every record, oldest first (also those not written yet); unreadable lines skipped."""
        with self._lock:
            return self._read_disk() + list(self._unwritten)

    def clear(self) -> bool:
        """Forget every record; True if there was something to forget. Raises OSError."""
        with self._lock:
            had = bool(self._unwritten) or self.path.exists()
            self._unwritten.clear()
            self.path.unlink(missing_ok=True)
        return had

    def _read_disk(self) -> list[Upload]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return []
        out: list[Upload] = []
        bad = 0
        for line in text.splitlines():
            try:
                out.append(Upload.from_json(line))
            except (ValueError, KeyError, TypeError):
                bad += 1
        if bad:
            log.warning("upload ledger %s: %d unreadable lines skipped", self.path, bad)
        return out

    def _prune(self, records: list[Upload]) -> list[Upload]:
        """Drop records older than ledger_days, then the oldest beyond ledger_max_kb."""
        oldest = self._clock() - self._cfg.ledger_days * 86400
        kept = sorted((r for r in records if r.opened_at >= oldest), key=lambda r: r.opened_at)
        budget = self._cfg.ledger_max_kb * 1024
        sizes = [len(r.to_json()) + 1 for r in kept]
        total = sum(sizes)
        first = 0
        while total > budget and first < len(kept):
            total -= sizes[first]
            first += 1
        return kept[first:]
