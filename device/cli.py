"""The `livespeaker` command: global options, then one subcommand per job.

Each subcommand lives in its own module, which exposes `register(subparsers)`; the module is
imported lazily so `livespeaker config check` does not load the audio or wake-word stacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from device import __version__
from device.config import EX_CONFIG, Config, ConfigError, load_config
from device.logsetup import LEVELS, print_error, setup_logging

log = logging.getLogger(__name__)

# Subcommand name -> module that registers it. Add new commands here.
COMMANDS: dict[str, str] = {
    "ask": "device.live.ask_cmd",
    "config": "device.config_cmd",
    "doctor": "device.doctor.cmd",
    "demo": "device.demo.cmd",
    "privacy": "device.privacy.cmd",
    "run": "device.run_cmd",
    "simulator": "device.simulator.cmd",
    "wakeword": "device.wakeword.cli",
}

Handler = Callable[[argparse.Namespace, Config], int]


class _Registrar(Protocol):
    def __call__(self, parser: argparse.ArgumentParser) -> Handler: ...


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand registered)."""
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
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        register: _Registrar = module.register
        sp = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        sp.set_defaults(handler=register(sp))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
