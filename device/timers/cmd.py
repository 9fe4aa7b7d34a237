"""List pending timers and alarms (and recent ones), or cancel one: timers cancel ID|--all."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from device.cli import Handler
from device.config import Config
from device.timers.book import TimerBook
from device.timers.model import WEEKDAYS, Done, Item, Kind, describe_left


def register(parser: argparse.ArgumentParser) -> Handler:
    """`timers [--json]`, `timers cancel ID`, `timers cancel --all`."""
    parser.add_argument("--json", action="store_true", help="machine-readable listing")
    sub = parser.add_subparsers(dest="timers_action", metavar="ACTION")
    cancel = sub.add_parser("cancel", help="cancel a pending timer or alarm by its id")
    cancel.add_argument("id", nargs="?", help="the id shown by `livespeaker timers`")
    cancel.add_argument("--all", action="store_true", help="cancel every pending one")
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    book = TimerBook(cfg.state_dir, grace_s=cfg.timers.grace_s)
    if args.timers_action == "cancel":
        return _cancel(book, args)
    if args.json:
        print(json.dumps(listing(book), indent=1))
        return 0
    pending = book.pending()
    if not pending:
        print("no timers or alarms pending")
    for item in pending:
        print(f"{item.id:>4}  {item.kind.value:5}  {item.name:24}  {due_text(book, item)}")
    recent = [d for d in book.history() if book.clock().wall - d.at_wall <= 24 * 3600]
    if recent:
        print("recent:")
        for d in recent:
            print(f"{d.item.id:>4}  {d.item.kind.value:5}  {d.item.name:24}  {done_text(book, d)}")
    return 0


def _cancel(book: TimerBook, args: argparse.Namespace) -> int:
    if args.all:
        gone = book.cancel_all()
    elif args.id:
        item = book.cancel(args.id)
        if item is None:
            print(f"livespeaker: no pending timer or alarm with id {args.id!r}", file=sys.stderr)
            return 1
        gone = [item]
    else:
        print("livespeaker: timers cancel needs an ID or --all", file=sys.stderr)
        return 2
    book.flush()
    for item in gone:
        print(f"cancelled {item.kind.value} {item.id} ({item.name})")
    if not gone:
        print("nothing was pending")
    return 0


def due_text(book: TimerBook, item: Item) -> str:
    """'in 3 minutes (at 14:03:10)' or 'Friday 07:30, repeats monday, friday'."""
    late = item.late_s(book.clock())
    if item.kind is Kind.TIMER:
        at = dt.datetime.fromtimestamp(book.clock().wall - late, book.tz).strftime("%H:%M:%S")
        return f"in {describe_left(-late)} (at {at})" if late < 0 else "due now"
    text = dt.datetime.fromtimestamp(item.next_at, book.tz).strftime("%a %Y-%m-%d %H:%M")
    if item.weekdays:
        text += ", repeats " + ", ".join(WEEKDAYS[d] for d in item.weekdays)
    return text


def done_text(book: TimerBook, d: Done) -> str:
    """'rang 2 minutes ago', 'missed 1 hour ago'."""
    return f"{d.outcome.value} {describe_left(book.clock().wall - d.due_wall)} ago"


def listing(book: TimerBook) -> dict[str, object]:
    """Pending and recent items as JSON-ready data."""
    t = book.clock()
    return {
        "pending": [i.to_dict() | {"due_in_s": round(-i.late_s(t), 1)} for i in book.pending()],
        "history": [d.to_dict() for d in book.history()],
    }
