"""Run the local Gemini Live API simulator (TLS on 127.0.0.1) until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from device.cli import Handler
from device.config import Config
from device.simulator.certs import ensure_certs
from device.simulator.faults import Fault
from device.simulator.server import DEFAULT_MODELS, LiveSimulator


def register(parser: argparse.ArgumentParser) -> Handler:
    """`simulator --port N [--cert-dir D] [--model M]... [--api-key K]... [--fault SPEC]...`."""
    parser.add_argument("--port", type=int, default=8443, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--cert-dir",
        default=str(Path.home() / ".cache" / "livespeaker" / "simulator-tls"),
        help="where the throwaway CA and certificate are kept (made if missing)",
    )
    parser.add_argument(
        "--model", action="append", help=f"accepted model (default {DEFAULT_MODELS})"
    )
    parser.add_argument("--api-key", action="append", help="accepted key (default: any non-empty)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject on every connection: ACTION[@WHEN[:N]], e.g. go_away@after_s:30, "
        "drop@mid_reply:3, close_quota@setup, stall@mid_reply:3 (silent, socket open), "
        "slow_setup@setup:5 (setupComplete 5 s late)",
    )
    parser.add_argument(
        "--realtime-factor", type=float, default=4.0, help="reply audio sent this much faster"
    )
    return _run


def _run(args: argparse.Namespace, cfg: Config) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    certs = ensure_certs(args.cert_dir)
    sim = LiveSimulator(
        certs,
        models=args.model or DEFAULT_MODELS,
        api_keys=args.api_key,
        host=args.host,
        port=args.port,
        realtime_factor=args.realtime_factor,
    )
    for spec in args.fault:
        sim.inject(Fault.parse(spec))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(f"base_url = {sim.base_url}", flush=True)
        print(f"ca_file = {certs.ca}", flush=True)
        print(
            "# put both under [live] in a config file; any API key works unless --api-key is given",
            flush=True,
        )
        await stop.wait()
    with contextlib.suppress(Exception):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
