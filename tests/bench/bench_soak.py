"""Soak of the real daemon process (`livespeaker run`): N spoken conversations in a row.

The daemon runs alone in its own process, so its RSS and open fds (read from /proc) are its own,
not the simulator's or the test's. Its state is followed through sd_notify STATUS= lines on a real
NOTIFY_SOCKET; underruns, overflows and dropped blocks come from its own summary log lines.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.app.states import STATUS_LINES, State
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.certs import ensure_certs
from tests.bench.bench_daemon import KEY, _config, _notify_socket, _wait_ready, open_fds, rss_mib

IDLE_LINE = STATUS_LINES[State.IDLE].format(wake="hey jarvis")
ANSWERING = STATUS_LINES[State.RESPONDING]


def _statuses(sock: Any, until: float) -> list[str]:
    """STATUS= values received until `until` (monotonic) or a short read timeout."""
    out = []
    while time.monotonic() < until:
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        out += [line[7:] for line in msg.split("\n") if line.startswith("STATUS=")]
    return out


def _conversation(card: VirtualSoundCard, sock: Any, question: np.ndarray) -> str | None:
    """Speak the question; None when it was answered and the daemon went back to idle."""
    lead = np.zeros(int(0.7 * MIC_RATE), np.int16)
    player = card.feed_mic(np.concatenate([lead, question]), MIC_RATE)
    deadline = time.monotonic() + 60
    seen: list[str] = []
    try:
        while time.monotonic() < deadline:
            seen += _statuses(sock, deadline)
            if any(s.startswith("Error") for s in seen):
                return f"error status: {seen}"
            if ANSWERING in seen and seen[-1] == IDLE_LINE:
                return None
        return f"timed out; statuses {seen}"
    finally:
        player.wait(30)


def _counts(log: str) -> dict[str, int]:
    return {
        "speaker_summary_logged": bool(re.search(r"speaker: \d+ underruns", log)),
        "speaker_underruns": sum(int(n) for n in re.findall(r"speaker: (\d+) underruns", log)),
        "speaker_device_underflows": sum(
            int(n) for n in re.findall(r"speaker: \d+ underruns, (\d+) device underflows", log)
        ),
        "speaker_longest_block_gap_ms": max(
            (int(n) for n in re.findall(r"blocks at most (\d+) ms apart", log)), default=-1
        ),
        "mic_overflows": sum(int(n) for n in re.findall(r"(\d+) input overflows", log)),
        "mic_blocks_dropped": sum(int(n) for n in re.findall(r"(\d+) blocks dropped", log)),
    }


def soak_process(
    card: VirtualSoundCard, tmp: Path, n: int, audio: dict[str, int] | None = None
) -> dict[str, Any]:
    """Run `n` conversations against one daemon process; numbers for the report."""
    from device.simulator.server import SimulatorThread
    from tests.bench.bench_conversations import teach

    question = synthesize("Hey Jarvis, what is the capital of France?", MIC_RATE)
    certs = ensure_certs(tmp / "certs")
    env = {**card.env, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(Path.cwd())}
    log_path = tmp / "daemon.log"
    failures: list[str] = []
    sim_thread = SimulatorThread(certs, api_keys=[KEY])
    with sim_thread as sim, log_path.open("w") as log:
        sim_thread.call(teach, sim, "what is the capital of France", question)
        cfg = _config(tmp, sim.base_url, certs.ca, audio, follow_up_s=1.0, no_speech_timeout_s=4.0)
        sock = _notify_socket(tmp / "notify")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "device", "--config", str(cfg), "run"],
            env={**env, "NOTIFY_SOCKET": str(tmp / "notify")},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        _wait_ready(sock, daemon, 120)
        time.sleep(2)
        start = {"rss_mib": rss_mib(daemon.pid), "open_fds": open_fds(daemon.pid)}
        series = [start["rss_mib"]]
        t0 = time.monotonic()
        for i in range(n):
            why = _conversation(card, sock, question)
            if why:
                failures.append(f"#{i}: {why[:200]}")
                time.sleep(5)
                _statuses(sock, time.monotonic() + 1)
            if (i + 1) % 10 == 0:
                series.append(rss_mib(daemon.pid))
                print(f"soak {i + 1}/{n}: daemon rss {series[-1]:.1f} MiB, "
                      f"fds {open_fds(daemon.pid)}, failures {len(failures)}", flush=True)  # fmt: skip
        elapsed = time.monotonic() - t0
        time.sleep(2)
        end = {"rss_mib": rss_mib(daemon.pid), "open_fds": open_fds(daemon.pid)}
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        sock.close()
    return {
        "process": "livespeaker run (alone in its process)",
        "conversations": n,
        "seconds": round(elapsed, 1),
        "failed": len(failures),
        "failures": failures[:20],
        "start": start,
        "end": end,
        "rss_series_mib": series,
        "exit_status": code,
        **_counts(log_path.read_text(errors="replace")),
    }
