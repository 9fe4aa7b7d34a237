"""List pending timers and alarms (and recent ones), or cancel one: timers cancel ID|--all.

While the daemon runs it is the one writer of timers.json: a cancel is handed to it as a request
(device.timers.book.request_cancel) and this command waits until it was applied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

from device.cli import Handler
from device.config import Config
from device.timers.book import CANCEL_ALL, TimerBook, claim_writer, request_cancel
from device.timers.model import WEEKDAYS, Done, Item, Kind, describe_left

REQUEST_WAIT_S = 5.0
"""How long `timers cancel` waits for a running daemon to apply its request."""


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
    if not args.all and not args.id:
        print("livespeaker: timers cancel needs an ID or --all", file=sys.stderr)
        return 2
    if args.id and not args.all and book.get(args.id) is None:
        print(f"livespeaker: no pending timer or alarm with id {args.id!r}", file=sys.stderr)
        return 1
    state_dir = book.path.parent
    if not claim_writer(state_dir):  # the daemon runs: it writes the file, it applies the cancel
        return _ask_the_daemon(book, CANCEL_ALL if args.all else args.id)
    gone = book.cancel_all() if args.all else [i for i in [book.cancel(args.id)] if i]
    book.flush()
    for item in gone:
        print(f"cancelled {item.kind.value} {item.id} ({item.name})")
    if not gone:
        print("nothing was pending")
    return 0


def _ask_the_daemon(book: TimerBook, item_id: str) -> int:
    """Leave a cancel request for the running daemon and wait for it to be applied."""
    owner = book.path.parent.stat().st_uid
    if os.geteuid() != owner:  # the daemon could neither read nor delete what we would write
        user = _user_name(owner)
        print(
            f"livespeaker: the daemon runs as {user!r}: cancel as that user "
            f"(sudo -u {user} livespeaker timers cancel ...)",
            file=sys.stderr,
        )
        return 1
    want = (
        book.pending() if item_id == CANCEL_ALL else [i for i in book.pending() if i.id == item_id]
    )
    request = request_cancel(book.path.parent, item_id)
    deadline = time.monotonic() + REQUEST_WAIT_S
    while request.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if request.exists():
        print(
            f"livespeaker: the cancel is queued ({request}): the daemon holds the timers but did "
            f"not apply it within {REQUEST_WAIT_S:.0f} s; it will at its next check",
            file=sys.stderr,
        )
        return 1
    book.refresh()
    still = {i.id for i in book.pending()}
    for item in want:
        if item.id not in still:
            print(f"cancelled {item.kind.value} {item.id} ({item.name})")
    if not want:
        print("nothing was pending")
    return 0


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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
