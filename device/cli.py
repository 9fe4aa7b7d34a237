"""The `livespeaker` command: global options, then one subcommand per job.

Each subcommand lives in its own module, which exposes `register(parser)`. Only the chosen
subcommand's module is imported, so `livespeaker config check` loads neither the Live SDK nor the
audio or wake-word stacks; the others are listed from the table below (a test keeps each help line
equal to its module's docstring).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from device import __version__
from device.config import EX_CONFIG, Config, ConfigError, load_config
from device.logsetup import LEVELS, print_error, setup_logging

log = logging.getLogger(__name__)

# Subcommand name -> (module that registers it, one-line help). Add new commands here.
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": (
        "device.live.ask_cmd",
        "Ask Gemini Live by text and hear or see the answer (resumes the saved conversation).",
    ),
    "config": ("device.config_cmd", "Check or show the configuration."),
    "doctor": (
        "device.doctor.cmd",
        "Self-check the device: audio, wake word, GPIO, API key, state (exit 1 on any failure).",
    ),
    "demo": (
        "device.demo.cmd",
        "Run the whole appliance on simulated hardware: simulator, mock pins drawn live, "
        "scripted speech.",
    ),
    "privacy": (
        "device.privacy.cmd",
        "What left the device: the upload ledger (a table, or --json); forget clears it.",
    ),
    "run": ("device.run_cmd", "Run the smart speaker daemon (what systemd starts)."),
    "simulator": (
        "device.simulator.cmd",
        "Run the local Gemini Live API simulator (TLS on 127.0.0.1) until interrupted.",
    ),
    "timers": (
        "device.timers.cmd",
        "List pending timers and alarms (and recent ones), or cancel one: timers cancel ID|--all.",
    ),
    "wakeword": (
        "device.wakeword.cli",
        "Wake word: score WAV files, a live score meter, and enrolled voices (enroll, list, forget).",
    ),
}

_OPTIONS_WITH_VALUE = ("--config", "--log-level")

Handler = Callable[[argparse.Namespace, Config], int]


class _Registrar(Protocol):
    def __call__(self, parser: argparse.ArgumentParser) -> Handler: ...


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not a global option or its value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only `command`'s module is imported and its options registered
    (None: all of them, e.g. for documentation)."""
    parser = argparse.ArgumentParser(
        prog="livespeaker", description="Raspberry Pi smart speaker on the Gemini Live API."
    )
    parser.add_argument("--version", action="version", version=f"livespeaker {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: /etc/livespeaker/config.toml, else built-in defaults)",
    )
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_line) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_line, description=help_line)
        if command is None or name == command:
            module = importlib.import_module(module_name)
            register: _Registrar = module.register
            sp.set_defaults(handler=register(sp))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = chosen_command(words)
    # An unknown or missing command registers none: argparse names the choices.
    parser = build_parser(command if command in COMMANDS else "")
    args = parser.parse_args(words)
    setup_logging(args.log_level)
    try:
        cfg, source = load_config(getattr(args, "config_path", None) or args.config)
    except ConfigError as exc:
        print_error(f"livespeaker: {exc}")
        return EX_CONFIG
    log.debug("configuration from %s", source)
    handler: Handler = args.handler
    try:
        return handler(args, cfg)
    except ConfigError as exc:
        print_error(f"livespeaker: {exc}")
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130
