"""Run every benchmark and assemble one JSON and one chart: `uv run python -m tests.bench`.

Each benchmark runs in its own process (its own private PulseAudio where it needs one) and writes
its JSON into bench-results/; this collects them into bench-results/bench.json and draws
bench-results/bench.png. `--soak N` sets the number of spoken conversations (default 200);
`--minutes M` the length of the mixed soak (faults between conversations, default 30; 0: each
fault kind once); `--quick` runs short versions of everything (for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.chart import draw

OUT = Path("bench-results")


def benches(quick: bool, soak: int, minutes: float = 30.0) -> dict[str, list[str]]:
    """Name -> command (each writes OUT/<name>.json)."""
    py = [sys.executable]
    return {
        "wakeword": [*py, "-m", "tests.bench.bench_wakeword", "--out", str(OUT / "wakeword.json"),
                     *(["--seconds", "30", "--trials", "1"] if quick else [])],
        "wakeword_accuracy": [*py, "-m", "tests.bench.bench_wakeword_accuracy",
                              "--out", str(OUT / "wakeword_accuracy.json"), *(["--ci"] if quick else [])],
        "noise_suppression": [*py, "-m", "tests.bench.bench_noise_suppression",
                              "--out", str(OUT / "noise_suppression.json"), *(["--ci"] if quick else [])],
        "audio": [*py, "-m", "tests.bench.bench_audio", "--out", str(OUT / "audio.json"),
                  *(["--trials", "3", "--mic-seconds", "3"] if quick else [])],
        "latency": [*py, "-m", "tests.bench.bench_latency", "--out", str(OUT / "latency.json"),
                    "--trials", "3" if quick else "9"],
        "handover": [*py, "tests/bench/bench_live_handover.py", "--out", str(OUT / "handover.json"),
                     "--rounds", "3" if quick else "10"],
        "daemon": [*py, "-m", "tests.bench.bench_daemon", "--out", str(OUT / "daemon.json"),
                   "--soak", str(soak),
                   *(["--idle-seconds", "10", "--starts", "1", "--trials", "2"] if quick else [])],
        "aec": [*py, "-m", "tests.bench.bench_aec", "--out", str(OUT / "aec.json"),
                "--answers", "3" if quick else "20"],
        "stream_time": [*py, "-m", "tests.bench.bench_stream_time",
                        "--out", str(OUT / "stream_time.json"), "--seconds", "5" if quick else "20"],
        "mixed_soak": [*py, "-m", "tests.bench.bench_mixed_soak", "--out", str(OUT / "mixed_soak.json"),
                       "--minutes", "0" if quick else f"{minutes:g}",
                       *(["--conversations", "1"] if quick else [])],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--soak", type=int, default=200, help="spoken conversations in the soak")
    p.add_argument(
        "--minutes", type=float, default=30.0, help="mixed soak length (0: each fault kind once)"
    )
    p.add_argument("--quick", action="store_true", help="short runs of everything")
    p.add_argument("--only", action="append", default=[], help="run only these (repeatable)")
    p.add_argument(
        "--redraw", action="store_true", help="run nothing: assemble and draw the existing JSONs"
    )
    args = p.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
    }
    previous = OUT / "bench.json"
    if args.redraw and previous.exists():  # keep when/where the numbers were measured
        old = json.loads(previous.read_text())
        results.update({k: old[k] for k in ("when", "machine") if k in old})
    failed = []
    for name, cmd in benches(
        args.quick, 20 if args.quick and args.soak == 200 else args.soak, args.minutes
    ).items():
        if args.only and name not in args.only:
            continue
        if not args.redraw:
            print(f"==> {name}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.monotonic()
            if subprocess.run(cmd, env=env).returncode != 0:
                failed.append(name)
                continue
        results[name] = json.loads((OUT / f"{name}.json").read_text())
        if not args.redraw:
            results[name]["bench_seconds"] = round(time.monotonic() - t0, 1)
    results["failed_benchmarks"] = failed
    (OUT / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    draw(results, OUT / "bench.png")
    print(f"wrote {OUT / 'bench.json'} and {OUT / 'bench.png'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
