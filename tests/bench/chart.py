"""The benchmark chart (bench-results/bench.png) from the assembled results (bench.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _bars(ax: Any, labels: list[str], values: list[float], title: str, unit: str) -> None:
    bars = ax.barh(labels, values, color="#4c72b0")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)
    ax.invert_yaxis()
    for b, v in zip(bars, values, strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.3g}", va="center", fontsize=8)
    ax.margins(x=0.25)


LATENCIES = (
    ("wake_to_first_audio_s", "wake detected → question audio at server"),
    ("model_audio_to_heard_s", "model audio received → heard at sink"),
    ("barge_in_button_to_silence_s", "button barge-in → silence at sink"),
    ("barge_in_interrupted_to_silence_s", "server interrupted → silence at sink"),
)


def latencies(results: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, median ms) of every latency measured."""
    d = results.get("daemon", {})
    lat = [(label, 1000 * d[key]["median"]) for key, label in LATENCIES if key in d]
    hand = results.get("handover", {}).get("live_handover")
    if hand:
        lat.append(("goAway → new connection live (client)", hand["handover_gap_median_ms"]))
        lat.append(("fresh connect + setup (client)", hand["connect_median_ms"]))
    gaps = d.get("server_stream_longest_gap_s")
    if gaps:
        plain, over = gaps["without_go_away"]["median"], gaps["go_away_handover"]["median"]
        lat.append(("longest audio gap at server, no goAway", 1000 * plain))
        lat.append(("longest audio gap at server, goAway handover", 1000 * over))
    return lat


def _soak(ax: Any, soak: dict[str, Any]) -> None:
    series = [*soak["rss_series_mib"], soak["end"]["rss_mib"]]
    xs = [*(i * 10 for i in range(len(series) - 1)), soak["conversations"]]
    ax.plot(xs, series, marker="o", ms=3)
    ax.set_title(
        f"Soak: {soak['conversations']} conversations, {soak['failed']} failed; "
        f"fds {soak['start']['open_fds']}→{soak['end']['open_fds']}",
        fontsize=10,
    )
    ax.set_xlabel("conversations")
    ax.set_ylabel("daemon RSS, MiB")
    ax.set_ylim(0, max(series) * 1.2)


def draw(results: dict[str, Any], path: Path) -> None:
    """Six panels: idle CPU/RSS vs bare openWakeWord, latencies, soak, wake-word CPU, audio."""
    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    d = results.get("daemon", {})
    idle = d.get("idle")
    if idle:
        names = ["daemon (listening)", "bare openWakeWord loop"]
        keys = ["daemon", "bare_openwakeword"]
        _bars(axes[0][0], names, [100 * idle["cpu_fraction"][k] for k in keys],
              "Idle CPU, same audio, same run", "% of one core")  # fmt: skip
        _bars(axes[0][1], names, [idle["rss_mib"][k] for k in keys], "Idle RSS", "MiB")
    lat = latencies(results)
    if lat:
        _bars(axes[0][2], [x[0] for x in lat], [x[1] for x in lat], "Latency (median)", "ms")
    if d.get("soak"):
        _soak(axes[1][0], d["soak"])
    ww = results.get("wakeword", {}).get("cpu_s_per_audio_s")
    if ww:
        _bars(axes[1][1], list(ww), [100 * v for v in ww.values()],
              "Wake-word CPU per second of audio", "% of one core")  # fmt: skip
    audio = results.get("audio", {})
    if audio.get("speaker"):
        sp = audio["speaker"]
        labels = ["engine play→sound", "baseline play→sound", "engine flush→silence",
                  "baseline flush→silence"]  # fmt: skip
        values = [1000 * sp["engine"]["start_s"], 1000 * sp["baseline"]["start_s"],
                  1000 * sp["engine"]["flush_s"], 1000 * sp["baseline"]["flush_s"]]  # fmt: skip
        _bars(axes[1][2], labels, values, "Speaker engine vs plain sounddevice", "ms")
    for row in axes:
        for a in row:
            if not a.has_data():
                a.set_axis_off()
    ready = d.get("start_to_ready_s", {})
    head = ""
    if "median" in ready:
        head = f"start → READY {ready['median']:.1f} s (median)"
        if "bare_openwakeword_loop_s" in ready:
            head += f", bare openWakeWord loop start {ready['bare_openwakeword_loop_s']:.1f} s"
        head += "; "
    fig.suptitle(
        f"livespeaker benchmarks: {head}{results.get('when', '')}, {results.get('machine', '')}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
