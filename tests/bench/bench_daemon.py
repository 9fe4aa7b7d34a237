"""Whole-daemon benchmark (not a test): `uv run python -m tests.bench.bench_daemon [--soak N]`.

On the rig (private PulseAudio card, Live API simulator over TLS, mock pins), in one run:
- idle: CPU and RSS of `livespeaker run` (on the packages a speaker installs) listening for the wake word, against a bare openWakeWord
  loop (sounddevice + `Model.predict` on 80 ms frames) reading the same microphone at the same time;
- start → READY=1 (sd_notify on a real NOTIFY_SOCKET), median of several starts;
- in-process daemon (tests/app/harness): wake detected → first question audio at the server;
  model audio received → heard at the speaker sink; barge-in by button and by the server's
  `interrupted` → silence at the sink;
- soak (bench_soak.py): N spoken conversations in a row against one `livespeaker run` process: its
  RSS and open fds at start and end, speaker underruns and microphone overflows (from its own
  summaries), failed conversations.
Writes bench-results/daemon.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.certs import ensure_certs

Int16 = npt.NDArray[np.int16]
KEY = "bench-key"
CLK = os.sysconf("SC_CLK_TCK")


# --- process measurements -------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int | str = "self") -> int:
    """Number of open file descriptors."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def idle_audio(seconds: float) -> Int16:
    """Room audio with no wake word: ordinary speech over pink-ish noise, `seconds` long."""
    talk = synthesize(
        "The kettle is on. I think it will rain later, so take a coat when you go out.", MIC_RATE
    )
    n = int(seconds * MIC_RATE)
    rng = np.random.default_rng(7)
    noise = np.cumsum(rng.standard_normal(n)) * 2.0
    noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
    out = noise.astype(np.float64)
    gap = np.zeros(int(2 * MIC_RATE))
    speech = np.tile(np.concatenate([talk, gap]), n // (len(talk) + len(gap)) + 1)[:n]
    return np.clip(out + speech, -32768, 32767).astype(np.int16)


BARE_LOOP = """
import sys, numpy as np, sounddevice as sd
from tests.wakeword.bare import bare_model
m = bare_model()
with sd.InputStream(samplerate=16000, channels=1, dtype="int16", blocksize=1280) as s:
    print("READY", flush=True)
    while True:
        frame, _ = s.read(1280)
        m.predict(frame[:, 0])
"""


def shipped_python() -> str:
    """A Python with exactly what a speaker installs (uv.lock without the dev group, as
    deploy/provision.sh exports it), so the daemon's RSS is not inflated by test-only packages
    (e.g. Pillow, which google-genai imports when it finds it). Built once, cached."""
    venv = Path.home() / ".cache/livespeaker/bench-shipped-venv"
    python = venv / "bin/python"
    uv = os.environ.get("UV") or "uv"
    reqs = subprocess.run(
        [
            uv,
            "export",
            "--quiet",
            "--no-header",
            "--locked",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "requirements-txt",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stamp = venv / "requirements.txt"
    if not python.exists() or not stamp.exists() or stamp.read_text() != reqs:
        subprocess.run(
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)], check=True
        )
        (venv / "req.in").write_text(reqs)
        subprocess.run(
            [uv, "pip", "sync", "--quiet", "--python", str(python), str(venv / "req.in")],
            check=True,
        )
        stamp.write_text(reqs)
    return str(python)


def _notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    return sock


def _wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], limit: float) -> float:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode} before READY")
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in msg.split("\n"):
            return time.monotonic()
    raise RuntimeError("no READY=1")


def _config(
    tmp: Path, base_url: str, ca: Path, audio: dict[str, int] | None = None, **conversation: float
) -> Path:
    conv = "".join(f"{k} = {v}\n" for k, v in conversation.items())
    sound = "".join(f"{k} = {v}\n" for k, v in (audio or {}).items())
    path = tmp / "config.toml"
    path.write_text(
        f'state_dir = "{tmp / "state"}"\n[live]\nbase_url = "{base_url}"\nca_file = "{ca}"\n'
        f'[gpio]\npin_factory = "mock"\n[conversation]\n{conv}[audio]\n{sound}'
    )
    return path


def idle_and_ready(
    card: VirtualSoundCard, tmp: Path, seconds: float, starts: int
) -> dict[str, Any]:
    """Start → READY (median of `starts`), then idle CPU/RSS: daemon vs bare loop, same audio."""
    from device.simulator.server import SimulatorThread

    certs = ensure_certs(tmp / "certs")
    env = {**card.env, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(Path.cwd())}
    ready_s: list[float] = []
    python = shipped_python()
    with SimulatorThread(certs, api_keys=[KEY]) as sim:
        cfg = _config(tmp, sim.base_url, certs.ca)
        daemon: subprocess.Popen[bytes] | None = None
        for i in range(starts):
            sock_path = tmp / f"notify-{i}"
            sock = _notify_socket(sock_path)
            t0 = time.monotonic()
            daemon = subprocess.Popen(
                [python, "-m", "device", "--config", str(cfg), "run"],
                env={**env, "NOTIFY_SOCKET": str(sock_path)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            ready_s.append(_wait_ready(sock, daemon, 120) - t0)
            sock.close()
            if i < starts - 1:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
        assert daemon is not None
        t0 = time.monotonic()
        bare = subprocess.Popen(
            [sys.executable, "-c", BARE_LOOP],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert bare.stdout is not None
        bare.stdout.readline()  # imports done, model loaded, input stream open
        bare_ready_s = time.monotonic() - t0
        audio = idle_audio(seconds + 10)
        feeder = card.feed_mic(audio, MIC_RATE)
        time.sleep(5)  # both settled, audio flowing
        pids = {"daemon": daemon.pid, "bare_openwakeword": bare.pid}
        c0 = {k: cpu_s(p) for k, p in pids.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        c1 = {k: cpu_s(p) for k, p in pids.items()}
        rss = {k: rss_mib(p) for k, p in pids.items()}
        feeder.kill()
        daemon.send_signal(signal.SIGTERM)
        bare.kill()
        for proc in (daemon, bare, feeder):
            proc.wait(30)
    cpu = {k: (c1[k] - c0[k]) / dt for k in pids}
    return {
        "start_to_ready_s": {
            "median": statistics.median(ready_s),
            "all": ready_s,
            "bare_openwakeword_loop_s": bare_ready_s,
            "ratio_to_bare": statistics.median(ready_s) / bare_ready_s,
        },
        "idle": {
            "seconds": round(dt, 1),
            "cpu_fraction": cpu,
            "rss_mib": rss,
            "cpu_ratio_daemon_vs_bare": cpu["daemon"] / cpu["bare_openwakeword"],
            "rss_ratio_daemon_vs_bare": rss["daemon"] / rss["bare_openwakeword"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--trials", type=int, default=5, help="latency trials per measurement")
    p.add_argument("--soak", type=int, default=200, help="conversations in the soak")
    p.add_argument("--out", default="bench-results/daemon.json")
    p.add_argument(
        "--no-conversations",
        action="store_true",
        help="skip the latency trials (idle, READY, soak only)",
    )
    p.add_argument(
        "--audio",
        default="{}",
        help='[audio] overrides for the soak, JSON (e.g. {"output_latency_ms": 30})',
    )
    args = p.parse_args(argv)
    from tests.bench.bench_conversations import run_conversations
    from tests.bench.bench_soak import soak_process

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as d, VirtualSoundCard() as card:
        tmp = Path(d)
        results.update(idle_and_ready(card, tmp / "idle", args.idle_seconds, args.starts))
        print(json.dumps(results, indent=2), flush=True)
        if not args.no_conversations:
            results.update(asyncio.run(run_conversations(card, tmp / "conv", args.trials)))
        if args.soak:
            results["soak"] = soak_process(card, tmp / "soak", args.soak, json.loads(args.audio))
            results["soak"]["audio_overrides"] = json.loads(args.audio)
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
