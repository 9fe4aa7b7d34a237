"""What a check reports, and the report's stable JSON form (read by deploy/provision.sh)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA = "livespeaker-doctor/1"
"""Version tag of the JSON document; bumped only on an incompatible change."""

Number = int | float | str | bool | None | list[int] | list[str]


class CheckStatus(StrEnum):
    """Outcome of one check."""

    PASS = "pass"
    """Works as configured."""
    WARN = "warn"
    """Works, but something deserves attention (e.g. clipping, a busy pin)."""
    FAIL = "fail"
    """Does not work: the appliance will not work as configured (exit status 1)."""
    SKIP = "skip"
    """Not run because something it needs failed or is not configured."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: a status, a one-line human detail and measured numbers."""

    name: str
    status: CheckStatus
    detail: str
    numbers: dict[str, Number] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The JSON object for this check."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "numbers": self.numbers,
        }


@dataclass(frozen=True)
class Report:
    """All checks, in the order they ran."""

    checks: tuple[CheckResult, ...]
    version: str

    @property
    def ok(self) -> bool:
        """No check failed."""
        return all(c.status is not CheckStatus.FAIL for c in self.checks)

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.name for c in self.checks if c.status is CheckStatus.FAIL]

    def to_json(self) -> str:
        """The machine-readable report.

        Schema livespeaker-doctor/1: {"schema", "version", "ok", "failed": [names],
        "summary": {status: count}, "checks": [{"name", "status", "detail", "numbers": {...}}]}.
        """
        summary = {s.value: sum(c.status is s for c in self.checks) for s in CheckStatus}
        doc = {
            "schema": SCHEMA,
            "version": self.version,
            "ok": self.ok,
            "failed": self.failed,
            "summary": summary,
            "checks": [c.as_dict() for c in self.checks],
        }
        return json.dumps(doc, indent=2)
