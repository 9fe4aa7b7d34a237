"""Self-check the device: audio, wake word, GPIO, API key, state (exit 1 on any failure)."""

from __future__ import annotations

import argparse
import sys

from device.cli import Handler
from device.config import Config
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult
from device.doctor.runner import CHECKS, run_checks


def register(parser: argparse.ArgumentParser) -> Handler:
    """`doctor [--json] [--mic-seconds S] [--skip CHECK ...]`."""
    parser.add_argument(
        "--json", action="store_true", help="print the machine-readable report only"
    )
    parser.add_argument(
        "--mic-seconds",
        type=float,
        default=3.0,
        metavar="S",
        help="microphone measurement (default 3)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=sorted(CHECKS),
        metavar="CHECK",
        help=f"do not run CHECK (repeatable): {', '.join(CHECKS)}",
    )
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    ctx = DoctorContext(cfg, mic_seconds=args.mic_seconds)

    def show(result: CheckResult) -> None:
        if not args.json:
            print(f"[{result.status.value.upper():4}] {result.name:14} {result.detail}", flush=True)

    report = run_checks(ctx, args.skip, show)
    if args.json:
        print(report.to_json())
    else:
        print("all checks passed" if report.ok else f"FAILED: {', '.join(report.failed)}")
    sys.stdout.flush()
    return 0 if report.ok else 1
