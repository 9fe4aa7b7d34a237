"""Self-check the device: audio, wake word, GPIO, API key, state (exit 1 on any failure)."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

from device.cli import Handler
from device.config import EX_CONFIG, SYSTEM_CONFIG_PATH, Config, ConfigError, EchoMode, with_setting
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, Report
from device.doctor.runner import CHECKS, run_checks
from device.statefile import write_atomic


def register(parser: argparse.ArgumentParser) -> Handler:
    """`doctor [--json] [--mic-seconds S] [--apply] [--skip CHECK ...]`."""
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
        "--apply",
        action="store_true",
        help="write the echo check's recommended [audio] echo_mode into the config file",
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
    if args.apply and not _apply(args, cfg, report):
        return EX_CONFIG
    return 0 if report.ok else 1


def _apply(args: argparse.Namespace, cfg: Config, report: Report) -> bool:
    """Write the echo check's recommendation into the config file; False if it could not be."""
    say = sys.stderr if args.json else sys.stdout
    echo = next((r for r in report.checks if r.name == "echo"), None)
    recommended = (echo.numbers or {}).get("recommended_echo_mode") if echo else None
    if not isinstance(recommended, str):
        print("--apply: the echo check did not measure the room: nothing applied", file=say)
        return True
    if cfg.audio.echo_mode is EchoMode.AUTO:
        print("--apply: echo_mode is auto: this measurement is used at the next start", file=say)
        return True
    if cfg.audio.echo_mode is EchoMode(recommended):
        print(f"--apply: echo_mode is already {recommended}: nothing to do", file=say)
        return True
    path = Path(args.config) if args.config else SYSTEM_CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        edited = with_setting(text, "audio", "echo_mode", recommended)
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
        write_atomic(path, edited, mode=mode)
    except (OSError, ConfigError) as exc:
        print(f"livespeaker: --apply: {path} not changed: {exc}", file=sys.stderr)
        return False
    print(
        f"--apply: echo_mode = {recommended} written to {path} "
        "(systemctl reload livespeaker to use it)",
        file=say,
    )
    return True
