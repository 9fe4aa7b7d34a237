"""Check: what the upload ledger says about the last 24 h, and whether transcripts are logged."""

from __future__ import annotations

import time

from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus, Number
from device.privacy.cmd import DAY_S, duration
from device.privacy.ledger import Ledger, summarize

NAME = "privacy"


def check(ctx: DoctorContext) -> CheckResult:
    """Summarise the ledger's last 24 h; warn while privacy.log_transcripts is on."""
    ledger = Ledger(ctx.cfg.state_dir, ctx.cfg.privacy)
    try:
        records = ledger.records()
    except OSError as exc:
        return CheckResult(
            NAME, CheckStatus.WARN, f"cannot read {ledger.path}: {exc.strerror or exc}"
        )
    s = summarize(records, time.time() - DAY_S)
    on = ctx.cfg.privacy.log_transcripts
    numbers: dict[str, Number] = {
        "conversations_24h": s.conversations,
        "connections_24h": s.connections,
        "audio_s_24h": round(s.audio_s, 2),
        "bytes_up_24h": s.bytes_up,
        "log_transcripts": on,
    }
    detail = (
        f"{s.conversations} conversations in the last 24 h, {duration(s.audio_s)} of audio sent"
    )
    if on:
        detail += "; privacy.log_transcripts is on: the journal keeps what was said and answered"
        return CheckResult(NAME, CheckStatus.WARN, detail, numbers)
    return CheckResult(NAME, CheckStatus.PASS, detail + "; no transcripts logged", numbers)
