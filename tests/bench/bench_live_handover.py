"""Benchmark: the goAway handover gap, against a plain connect measured in the same run.

    uv run python tests/bench/bench_live_handover.py [--rounds N] [--out FILE.json]

Real google-genai SDK against the local simulator over TLS on loopback. While the microphone
streams 20 ms chunks in real time, the simulator sends goAway; the conversation opens the
replacement connection with the newest handle. The gap is goAway received -> new connection live
(buffered audio flushed). Audio is never lost in that gap (tests/live prove it); it is delayed by
it. Reported as a ratio to a fresh connect+setup, since absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from device.apikey import ApiKey
from device.config import Config
from device.events import SessionResumed
from device.live import LiveClient
from device.simulator.certs import ensure_certs
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator

KEY = ApiKey("bench-key", "bench")


async def _connect_once(client: LiveClient) -> float:
    t0 = time.perf_counter()
    link = await client.connect(None)
    dt = time.perf_counter() - t0
    await link.close()
    return dt


async def _handover_once(client: LiveClient, sim: LiveSimulator) -> tuple[float, int]:
    async with client.session(resume=False) as conv:
        events = aiter(conv.events())
        await anext(events)  # the first SessionResumed
        await conv.send_text("hello")  # so a resumable handle exists
        sim.inject(Fault(FaultAction.GO_AWAY, When.AUDIO_IN, after_chunks=10))
        chunk = bytes(640)
        done = asyncio.Event()

        async def mic() -> None:
            while not done.is_set():
                await conv.send_audio(chunk)
                await asyncio.sleep(0.02)

        task = asyncio.create_task(mic(), name="bench-mic")
        async with asyncio.timeout(30):
            async for ev in events:
                if isinstance(ev, SessionResumed) and ev.resumed:
                    break
        done.set()
        await task
        sent = conv.stats.audio_chunks_sent
        return conv.stats.handover_gap_s[-1], sent


async def run(rounds: int) -> dict[str, float | int]:
    """Measure; returns the numbers (seconds)."""
    with tempfile.TemporaryDirectory() as d:
        sim = LiveSimulator(
            ensure_certs(Path(d) / "tls"), realtime_factor=20, hold_turn_complete=False
        )
        async with sim:
            cfg = Config.model_validate(
                {"state_dir": d, "live": {"base_url": sim.base_url, "ca_file": str(sim.certs.ca)}}
            )
            client = LiveClient(cfg, KEY)
            await _connect_once(client)  # warm-up (imports, TLS context)
            connects = [await _connect_once(client) for _ in range(rounds)]
            gaps = []
            for _ in range(rounds):
                gap, _sent = await _handover_once(client, sim)
                gaps.append(gap)
            received = sum(len(c.audio_in()) for c in sim.connections)
    connect_s = statistics.median(connects)
    gap_s = statistics.median(gaps)
    return {
        "rounds": rounds,
        "connect_median_ms": round(connect_s * 1000, 1),
        "handover_gap_median_ms": round(gap_s * 1000, 1),
        "handover_gap_max_ms": round(max(gaps) * 1000, 1),
        "gap_to_connect_ratio": round(gap_s / connect_s, 2),
        "audio_chunks_received": received,
    }


def main() -> int:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds))
    text = json.dumps({"live_handover": result}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
