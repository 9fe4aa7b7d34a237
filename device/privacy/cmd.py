"""What left the device: the upload ledger (a table, or --json); forget clears it.

`forget` also deletes the saved conversation (resumption handle): the next wake-up starts fresh.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from device.cli import Handler
from device.config import Config
from device.privacy.ledger import Ledger, Upload, summarize

DAY_S = 86400.0


def register(parser: argparse.ArgumentParser) -> Handler:
    """`privacy [--json]` and `privacy forget`."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=("show", "forget"),
        default="show",
        help="show (default): the upload ledger; forget: clear it and the saved conversation",
    )
    parser.add_argument("--json", action="store_true", help="the records as a JSON array")
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    ledger = Ledger(cfg.state_dir, cfg.privacy)
    if args.action == "forget":
        return _forget(cfg, ledger)
    records = ledger.records()
    if args.json:
        print(json.dumps([asdict(r) for r in records], indent=2))
        return 0
    print(table(records))
    s = summarize(records, time.time() - DAY_S)
    print(
        f"{s.conversations} conversations in the last 24 h, {duration(s.audio_s)} of audio sent; "
        f"{len(records)} connections kept (up to {cfg.privacy.ledger_days} days) in {ledger.path}"
    )
    if cfg.privacy.log_transcripts:
        print("note: privacy.log_transcripts is on: the journal keeps what was said and answered")
    return 0


def _forget(cfg: Config, ledger: Ledger) -> int:
    from device.live.handles import HandleStore

    store = HandleStore(cfg.state_dir)
    had_handle = store.load() is not None
    try:
        had_records = ledger.clear()
    except OSError as exc:
        print(f"livespeaker: cannot clear {ledger.path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    store.clear()  # never raises: a failed delete is a warning, checked here
    if store.path.exists():
        print(f"livespeaker: cannot delete {store.path}", file=sys.stderr)
        return 1
    print(
        f"forgot {'the' if had_records else 'an empty'} upload ledger and "
        f"{'the saved conversation' if had_handle else 'no saved conversation (there was none)'}:"
        " the next wake-up starts a fresh conversation"
    )
    return 0


def duration(seconds: float) -> str:
    """'3 min 10 s', '42.5 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m < 60 else f"{m // 60} h {m % 60} min"


def table(records: list[Upload]) -> str:
    """The ledger as a table, oldest first."""
    rows = [("opened", "trigger", "audio", "up", "down", "length", "ended")]
    for r in records:
        trigger = str(r.trigger)
        if r.wake_word:
            trigger = f"{r.wake_word} {r.score:.2f}" + (f" ({r.voice})" if r.voice else "")
            trigger += " (2nd stage)" if r.second_stage else ""
            trigger += " (microWakeWord)" if r.micro else ""
        trigger += " +resumed" if r.resumed else ""
        ended = str(r.ended) + (f" ({r.error or r.cause})" if r.error or r.cause else "")
        if r.connection > 1:
            ended += f" [part {r.connection} of conversation {r.conversation}]"
        rows.append(
            (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.opened_at)),
                trigger,
                f"{r.audio_s:.2f} s",
                _size(r.bytes_up),
                _size(r.bytes_down),
                f"{r.duration_s:.1f} s",
                ended,
            )
        )
    if len(rows) == 1:
        return "no connections recorded"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _size(n: int) -> str:
    return (
        f"{n} B"
        if n < 1024
        else f"{n / 1024:.0f} KiB"
        if n < 1024 * 1024
        else f"{n / 1048576:.1f} MiB"
    )
