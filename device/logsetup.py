"""Logging: journald (with structured fields) under systemd, plain stderr otherwise."""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("debug", "info", "warning", "error")


def under_systemd(environ: dict[str, str] | None = None) -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """True when our stderr is the journal stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    env = os.environ if environ is None else environ
    try:
        dev, ino = (int(x) for x in env.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def print_error(text: str) -> None:
    """An error for the user on stderr, before (or instead of) logging.

    When stderr is the journal each line gets the `<3>` prefix systemd reads as priority "err", so
    `journalctl -p err` shows e.g. why the service refused its config (exit 78).
    """
    prefix = "<3>" if stderr_is_journal() else ""
    print("\n".join(prefix + line for line in text.splitlines()), file=sys.stderr, flush=True)


class _FieldsFormatter(logging.Formatter):
    """stderr format; structured `extra` fields (upper-case names) are appended as k=v."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k.isupper() and not k.startswith("_")}
        if fields:
            text += " " + " ".join(f"{k.lower()}={v}" for k, v in sorted(fields.items()))
        return text


HANDLER_NAME = "livespeaker"
"""The name of the root handler setup_logging installs (a second call replaces it)."""


def setup_logging(level: str = "info", *, journal: bool | None = None) -> None:
    """Configure the root logger once for the process (other handlers, e.g. pytest's, stay).

    Structured fields are passed as `extra={"STATE": "idle"}`: journald stores them as fields,
    stderr shows them as `state=idle`.
    """
    use_journal = under_systemd() if journal is None else journal
    handler: logging.Handler
    if use_journal:
        from systemd.journal import JournalHandler  # Linux-only dependency

        handler = JournalHandler(SYSLOG_IDENTIFIER="livespeaker")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            _FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays out of the journal unless debugging.
    for noisy in ("websockets", "google_genai", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
