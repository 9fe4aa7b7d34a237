"""Noise suppression against the wake word (not a test):
`uv run python -m tests.bench.bench_noise_suppression [--ci] [--levels 1 3]`.

WebRTC's noise suppressor comes with the same library as the echo canceller (pywebrtc-audio's
`NoiseSuppressor`, 16 kHz mono, 10 ms frames). Issue 17 allows it on the microphone path only if
it does not hurt the wake word. This runs the wake-word evaluation of tests/wakeword/corpus.py
(held-out voices: every condition, and the negatives) twice: on the microphone audio as it is,
and after the suppressor at each level; per condition, the bare engine's and the daemon path's
recall, and false accepts per hour. Writes bench-results/noise_suppression.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from device.config import WakewordConfig
from tests.wakeword import corpus, evaluate
from tests.wakeword.corpus import Spec, Stream
from tests.wakeword.evaluate import Analysis, Row

FRAME = 160
"""10 ms at 16 kHz: the suppressor's frame."""


def suppress(stream: Stream, level: int) -> Stream:
    """The stream through one suppressor at `level` (0 mild .. 3 strongest), as a microphone
    path would run it: one instance over the whole stream, in order."""
    import pywebrtc_audio

    ns = pywebrtc_audio.NoiseSuppressor(sample_rate=16000, num_channels=1, level=level)
    x = stream.audio
    n = len(x) // FRAME * FRAME
    out = np.zeros_like(x)
    for i in range(0, n, FRAME):
        out[i : i + FRAME] = ns.process(x[i : i + FRAME])
    return replace(stream, audio=out)


def build(job: tuple[Spec, int | None]) -> tuple[Stream, Analysis]:
    """One stream, suppressed at a level (None: as it is), and its features (worker process)."""
    spec, level = job
    stream = spec.build()
    if level is not None:
        stream = suppress(stream, level)
    return stream, evaluate.analyse(stream)


def held_out_specs(ci: bool) -> list[Spec]:
    """The held-out part of the bench's evaluation (CI's reduced set with --ci)."""
    specs = corpus.ci_specs() if ci else corpus.full_specs()
    return [s for s in specs if s.split == "held-out"]


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--ci", action="store_true", help="CI's reduced set")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 3])
    p.add_argument("--out", default="bench-results/noise_suppression.json")
    args = p.parse_args()
    t0 = time.monotonic()
    specs = held_out_specs(args.ci)
    settings: list[int | None] = [None, *args.levels]
    jobs = [(s, level) for level in settings for s in specs]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        done = list(pool.map(build, jobs))
    cfg = WakewordConfig()
    by_setting: dict[str, list[Row]] = {}
    for k, level in enumerate(settings):
        part = done[k * len(specs) : (k + 1) * len(specs)]
        results = [(s, st, a) for s, (st, a) in zip(specs, part, strict=True)]
        by_setting["raw" if level is None else f"ns{level}"] = evaluate.compare(results, cfg)
    names = list(by_setting)
    print("held-out voices, wake word at default settings: bare / daemon path")
    print(f"{'condition':<30}{'n':>5}" + "".join(f"{n:>14}" for n in names))
    for i, r in enumerate(by_setting["raw"]):
        fmt = "{:>6.0%}/{:<7.0%}" if r.kind == "pos" else "{:>6.2f}/{:<7.2f}"
        cells = "".join(fmt.format(by_setting[n][i].bare, by_setting[n][i].daemon) for n in names)
        unit = "" if r.kind == "pos" else " (FA/h)"
        print(f"{r.condition + unit:<30}{r.n:>5}{cells}")
    report: dict[str, Any] = {
        "settings": cfg.model_dump(mode="json"),
        "rows": {n: [r.__dict__ for r in rows] for n, rows in by_setting.items()},
        "summary": {n: summary(rows) for n, rows in by_setting.items()},
    }
    for n, s in report["summary"].items():
        print(
            f"{n}: daemon recall clean {s['clean']:.0%}, 10 dB+rooms {s['noisy']:.0%}, "
            f"false accepts {s['false_accepts']} ({s['false_accepts_per_hour']:.2f}/h)"
        )
    report["seconds"] = round(time.monotonic() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} ({report['seconds']:.0f} s)")


def summary(rows: Sequence[Row]) -> dict[str, float]:
    """The daemon path's clean recall, mean recall over 10 dB and room conditions, and false
    accepts (per hour) over the ordinary negatives (near misses apart)."""
    pos = [r for r in rows if r.kind == "pos"]
    noisy = [
        r.daemon for r in pos if r.condition in ("room", "far") or r.condition.endswith(" 10 dB")
    ]
    neg = [r for r in rows if r.kind == "neg"]
    hours = sum(r.n for r in neg) / 60
    fa = sum(r.daemon * r.n / 60 for r in neg)
    return {
        "clean": next(r.daemon for r in pos if r.condition == "clean"),
        "noisy": float(np.mean(noisy)),
        "false_accepts": round(fa),
        "false_accepts_per_hour": fa / hours if hours else 0.0,
    }


if __name__ == "__main__":
    main()
