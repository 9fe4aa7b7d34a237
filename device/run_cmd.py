"""Run the smart speaker daemon (what systemd starts)."""

from __future__ import annotations

import argparse
import asyncio

from device.cli import Handler
from device.config import Config


def register(parser: argparse.ArgumentParser) -> Handler:
    """`run`: no options; everything comes from the config file."""
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from device.daemon import Daemon

    return asyncio.run(Daemon(cfg, args.config).run())
