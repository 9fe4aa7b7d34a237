"""Check or show the configuration."""

from __future__ import annotations

import argparse
import sys

from device.apikey import find_api_key
from device.cli import Handler
from device.config import EX_CONFIG, Config, ConfigError, config_to_toml, load_config


def register(parser: argparse.ArgumentParser) -> Handler:
    """`config check [PATH]` and `config show`."""
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a config file (exit 78 when invalid)")
    # dest `config_path`: the CLI then loads this file *instead of* the installed config, so a
    # broken /etc/livespeaker/config.toml cannot fail the check of a good file (cli.main).
    check.add_argument(
        "config_path",
        metavar="PATH",
        nargs="?",
        help="file to check (default: the effective config)",
    )
    sub.add_parser("show", help="print the effective configuration (secrets redacted)")
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    if args.config_command == "check":
        if args.config_path:
            try:
                _, source = load_config(args.config_path)
            except ConfigError as exc:
                print(f"livespeaker: {exc}", file=sys.stderr)
                return EX_CONFIG
        else:
            source = args.config or "the effective configuration"
        print(f"{source}: OK")
        return 0
    print(config_to_toml(cfg, comments=False), end="")
    key = find_api_key(cfg.live)
    print(f"\n# api key: {'<redacted>, from ' + key.source if key else 'not found'}")
    return 0
