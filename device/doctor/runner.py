"""Run the checks in order; a crashing check becomes a failure, never a traceback."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable

from device import __version__
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus, Report

log = logging.getLogger(__name__)

CHECKS: dict[str, str] = {
    "audio_devices": "device.doctor.audio_devices",
    "microphone": "device.doctor.mic",
    "speaker": "device.doctor.speaker",
    "echo": "device.doctor.echo",
    "wakeword": "device.doctor.wakeword",
    "gpio": "device.doctor.gpio",
    "api": "device.doctor.api",
    "home": "device.doctor.home",
    "state": "device.doctor.state",
    "privacy": "device.doctor.privacy",
}
"""Check name -> module with `check(ctx) -> CheckResult`, in the order they run."""


def run_checks(
    ctx: DoctorContext,
    skip: Iterable[str] = (),
    progress: Callable[[CheckResult], None] | None = None,
) -> Report:
    """Run every check not in `skip`; `progress` sees each result as it arrives."""
    skipped = set(skip)
    results: list[CheckResult] = []
    for name, module_name in CHECKS.items():
        if name in skipped:
            result = CheckResult(name, CheckStatus.SKIP, "skipped on request")
        else:
            result = _run_one(name, module_name, ctx)
        results.append(result)
        if progress:
            progress(result)
    return Report(tuple(results), __version__)


def _run_one(name: str, module_name: str, ctx: DoctorContext) -> CheckResult:
    t0 = time.perf_counter()
    try:
        check: Callable[[DoctorContext], CheckResult] = importlib.import_module(module_name).check
        result = check(ctx)
    except Exception as exc:  # component boundary: one broken check must not hide the others
        log.exception("check %s crashed", name)
        result = CheckResult(name, CheckStatus.FAIL, f"check crashed: {type(exc).__name__}: {exc}")
    log.debug("check %s: %s in %.2f s", name, result.status, time.perf_counter() - t0)
    return result
