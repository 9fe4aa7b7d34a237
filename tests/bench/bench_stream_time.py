"""PortAudio's stream times on the monotonic clock (not a test):
`uv run python -m tests.bench.bench_stream_time [--seconds S]`.

On a private PulseAudio card, a 48 kHz output stream and a 44.1 kHz input stream (20 ms blocks,
as the daemon opens them in echo_mode "aec") run S seconds quiet and S seconds with a busy Python
thread beside them (the daemon's loop scoring the wake word holds the GIL as much). Each
callback maps its DAC or ADC time to the monotonic clock two ways:
- baseline, the callback's own clock: `time.monotonic() - (currentTime - adc)` (what the
  microphone and the speaker did before device.audio.stream_time);
- `stream_time.monotonic_at(currentTime) - (currentTime - adc)`: the two clocks read together.
Printed per stream and load: how late the Python callback ran after PortAudio read its clock
(the wall clock's reading in the callback minus `currentTime`: the baseline's timeline moves by
it, the clocks read together do not), and for the output (the echo canceller's reference) the
timeline's jitter: the mapped DAC times' residual from their own course (a straight line, the
device's clock against the monotonic one, and a running median over 0.5 s, the device's latency
as it changes), its standard deviation and largest value, and the ratio to the baseline. (The
rig's idle microphone is clocked in bursts, its ADC times off a straight line by far more than
either mapping moves them: no jitter is printed for it.)
Writes bench-results/stream_time.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.audio.stream_time import monotonic_at
from device.simhw.pulse import VirtualSoundCard
from tests.audio.rig import busy

BLOCK_MS = 20
WINDOW = 25
"""Callbacks in the running median the jitter is measured from (0.5 s)."""


def run(output: bool, seconds: float, loaded: bool) -> dict[str, Any]:
    import sounddevice as sd

    rate = 48_000 if output else 44_100
    rows: list[tuple[float, float, float, float]] = []

    def record(current: float, device_time: float) -> None:
        rows.append(
            (time.monotonic(), monotonic_at(current), time.time() - current, device_time - current)
        )

    def out_cb(outdata: Any, frames: int, info: Any, status: Any) -> None:
        outdata.fill(0)
        record(info.currentTime, info.outputBufferDacTime)

    def in_cb(indata: Any, frames: int, info: Any, status: Any) -> None:
        record(info.currentTime, info.inputBufferAdcTime)

    stop = threading.Event()
    worker = threading.Thread(target=busy, args=(stop,), daemon=True)
    if loaded:
        worker.start()
    kind = sd.OutputStream if output else sd.InputStream
    blocksize = rate * BLOCK_MS // 1000
    with kind(
        samplerate=rate, channels=2, blocksize=blocksize, callback=out_cb if output else in_cb
    ):
        time.sleep(seconds)
    stop.set()
    if loaded:
        worker.join()
    a = np.array(rows[25:])  # after the stream's pre-fill burst
    counts = np.arange(len(a)) * blocksize

    def jitter(times: np.ndarray) -> tuple[float, float]:
        """Std and largest residual (ms) from the timeline's own course: a straight line
        through the times (the clock's rate), and then the running median of 25 callbacks
        (0.5 s: a lasting change of the device's latency, which the timelines follow)."""
        x = times - np.polyval(np.polyfit(counts, times, 1), counts)
        half = WINDOW // 2
        padded = np.pad(x, half, mode="edge")
        course = np.median(np.lib.stride_tricks.sliding_window_view(padded, WINDOW), axis=1)
        residual = (x - course) * 1000
        return float(residual.std()), float(np.abs(residual).max())

    late = a[:, 2] * 1000
    result: dict[str, Any] = {
        "stream": "output 48 kHz" if output else "input 44.1 kHz",
        "busy_thread": loaded,
        "callbacks": len(a),
        "callback_late_ms": {
            "median": round(float(np.median(late)), 2),
            "p99": round(float(np.percentile(late, 99)), 2),
            "max": round(float(late.max()), 2),
        },
    }
    if output:
        baseline = jitter(a[:, 0] + a[:, 3])
        shipped = jitter(a[:, 1] + a[:, 3])
        result["baseline_jitter_ms"] = {"std": round(baseline[0], 3), "max": round(baseline[1], 3)}
        result["shipped_jitter_ms"] = {"std": round(shipped[0], 3), "max": round(shipped[1], 3)}
        result["std_ratio"] = round(shipped[0] / baseline[0], 3) if baseline[0] else None
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", default="bench-results/stream_time.json")
    args = p.parse_args()
    results = []
    with VirtualSoundCard(mic_rate=44_100):
        for output in (True, False):
            for loaded in (False, True):
                r = run(output, args.seconds, loaded)
                results.append(r)
                late = r["callback_late_ms"]
                line = (
                    f"{r['stream']:15} {'busy thread' if loaded else 'quiet':11} callback late "
                    f"{late['median']:.2f} ms median, {late['p99']:.2f} p99, {late['max']:.2f} max"
                )
                if output:
                    base, ship = r["baseline_jitter_ms"], r["shipped_jitter_ms"]
                    line += (
                        f" | DAC timeline jitter: callback's clock {base['std']:.3f} ms std "
                        f"({base['max']:.2f} max), clocks read together {ship['std']:.3f} ms std "
                        f"({ship['max']:.2f} max): {r['std_ratio']}x"
                    )
                print(line)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": args.seconds, "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
