"""What the room does to the speaker's sound, measured once (doctor) and remembered (`auto`).

    signal = probe_signal()                         # 6 s of speech, 16 kHz
    m = measure(signal, recorded_16k)               # delay, echo return loss, what AEC removes
    save(state_dir, m); load(state_dir)             # state_dir/echo.json, for echo_mode = "auto"
    effective_mode(cfg.audio.echo_mode, state_dir)  # "auto" -> aec or half_duplex

No PortAudio here: the doctor plays and records, this only computes (and runs the same
EchoCanceller the daemon runs, on the recording).
"""

from __future__ import annotations

import json
import logging
import time
import wave
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.config import EchoMode
from device.events import MIC_RATE, AudioBlock
from device.statefile import write_atomic

log = logging.getLogger(__name__)

Int16 = npt.NDArray[np.int16]

FILE = "echo.json"
AEC_MIN_ERLE_DB = 25.0
"""The canceller must remove this much of the echo for `auto` (and doctor) to choose aec."""
HEARD_CORRELATION = 0.3
"""The recording counts as carrying the echo when its half-second pieces correlate with the
probe's (each at its own delay) above this, in the median over the probe's loud pieces."""
CHUNK_S = 0.5
"""The probe is followed piece by piece: an echo path whose delay wanders while it plays (a
resampling loopback, two sample clocks, a loaded machine) decorrelates a single 6 s match."""
MAX_WANDER_S = 0.1
"""Pieces found further than this from the median delay are chance matches, not the echo."""
STEADY_MS = 10.0
"""Above this much wander of the echo's delay while the probe played, the measurement says
nothing about the room's own path (the canceller cannot follow it): never aec on it."""
MAX_DELAY_S = 1.0
"""How long after the signal was sent its echo is searched for (device buffers included: the
doctor plays through a 0.3 s buffer, and a USB speaker or a Bluetooth-like path adds more)."""


def probe_signal() -> Int16:
    """The probe: 6 s of speech at -20 dBFS, 16 kHz ("Hello. This is your speaker measuring the
    room it is in. Please stay quiet for a few seconds.", espeak-ng, kept in the package as
    device/audio/probe.wav). Speech on purpose: WebRTC's canceller treats noise and synthetic
    vowels differently (a noise probe measured 20 dB and vowels 8-46 dB in simulated rooms where
    this speech measures 30-49 dB, tests/audio/test_echo_room.py)."""
    with wave.open(str(resources.files("device.audio") / "probe.wav"), "rb") as w:
        probe: Int16 = np.frombuffer(w.readframes(w.getnframes()), np.int16).copy()
    return probe


@dataclass(frozen=True)
class EchoMeasurement:
    """One measurement of the room (all levels in dB)."""

    heard: bool
    """The microphone hears the speaker."""
    delay_ms: float | None
    """From the signal's start in the recording to its echo (devices and air): the median over
    the probe's pieces."""
    erl_db: float | None
    """Echo return loss: how much quieter the echo is than what was played."""
    erle_db: float | None
    """How much of the echo the canceller removed once it had learned (the probe's second half)."""
    recommended: EchoMode
    measured_at: float
    wander_ms: float | None = None
    """How far the echo's delay moved while the probe played (0 on a fixed path; a resampling
    loopback or a loaded machine moves it, and the canceller then removes less)."""


def _db(x: npt.NDArray[np.floating] | Int16) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-3))


def measure(signal: Int16, recorded: Int16, played_at: int = 0) -> EchoMeasurement:
    """The echo of `signal` (16 kHz) in `recorded` (16 kHz), where the signal was sent to the
    speaker about `played_at` samples into the recording (the echo is searched after it)."""
    now = time.time()
    a = signal.astype(np.float64)
    b = recorded[played_at:].astype(np.float64)
    span = len(a) + int(MAX_DELAY_S * MIC_RATE)
    if len(b) < span:
        raise ValueError("the recording is shorter than the signal and its echo")
    lags, corrs, erl = _follow(a, b[:span])
    found = corrs >= HEARD_CORRELATION
    lag = int(np.median(lags[found])) if found.any() else 0
    steady = found & (np.abs(lags - lag) <= MAX_WANDER_S * MIC_RATE)
    if 2 * int(steady.sum()) < len(corrs):  # most of the probe is not in the recording
        return EchoMeasurement(False, None, None, None, EchoMode.FULL_DUPLEX, now)
    wander = float(np.ptp(lags[steady])) / MIC_RATE * 1000
    seg = b[lag : lag + len(a)]
    residual = _cancel(signal, recorded[played_at:], lag)
    tail = slice(len(a) // 2, len(a))
    erle = _db(seg[tail]) - _db(residual[lag:][tail])
    steady_path = wander <= STEADY_MS
    mode = EchoMode.AEC if erle >= AEC_MIN_ERLE_DB and steady_path else EchoMode.HALF_DUPLEX
    return EchoMeasurement(
        True,
        round(lag / MIC_RATE * 1000, 1),
        round(erl, 1),
        round(erle, 1),
        mode,
        now,
        round(wander, 1),
    )


def _follow(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
    """Each loud CHUNK_S piece of the probe `a` found in the recording `b`: its delay and its
    normalised correlation there; and how much quieter (dB) what was found is than the pieces."""
    n = int(CHUNK_S * MIC_RATE)
    reach = len(b) - len(a)
    size = 1 << (n + n + reach).bit_length()
    pieces = [a[s : s + n] for s in range(0, len(a) - n + 1, n)]
    loudest = max(float(np.mean(p**2)) for p in pieces)
    lags: list[int] = []
    corrs: list[float] = []
    sent: list[npt.NDArray[np.float64]] = []
    found: list[npt.NDArray[np.float64]] = []
    for i, piece in enumerate(pieces):
        if float(np.mean(piece**2)) < loudest / 100:  # a pause in the speech
            continue
        window = b[i * n : i * n + n + reach]
        xc = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(piece, size)), size)
        xc = xc[: reach + 1]
        lag = int(np.argmax(np.abs(xc)))
        there = window[lag : lag + n]
        lags.append(lag)
        corrs.append(float(abs(xc[lag]) / (np.linalg.norm(piece) * np.linalg.norm(there) + 1e-9)))
        sent.append(piece)
        found.append(there)
    erl = _db(np.concatenate(sent)) - _db(np.concatenate(found)) if found else 0.0
    return np.array(lags, np.int64), np.array(corrs), erl


def _cancel(signal: Int16, recorded: Int16, lag: int) -> Int16:
    """Run the daemon's EchoCanceller over the recording with the signal as its reference,
    heard when its echo arrives (the canceller keeps its own lead)."""
    from device.audio.aec import EchoCanceller, EchoReference

    reference = EchoReference()
    canceller = EchoCanceller(reference)
    played = (signal / 32767).astype(np.float32)
    t0 = 1000.0
    heard_at = t0 + lag / MIC_RATE
    block = MIC_RATE // 50
    out = np.zeros(len(recorded), np.int16)
    fed = 0
    for start in range(0, len(recorded) - block + 1, block):
        # the speaker hands its blocks over ahead of the microphone, as in the daemon
        while (
            fed < len(played) and heard_at + fed / MIC_RATE < t0 + (start + block) / MIC_RATE + 0.1
        ):
            reference.put(heard_at + fed / MIC_RATE, played[fed : fed + block], MIC_RATE)
            fed += block
        cleaned = canceller.process(
            AudioBlock(recorded[start : start + block].tobytes(), start), t0 + start / MIC_RATE
        )
        out[start : start + block] = np.frombuffer(cleaned.pcm, np.int16)
    return out


def save(state_dir: str | Path, m: EchoMeasurement) -> None:
    """Remember the measurement for echo_mode = "auto" (state_dir/echo.json)."""
    doc = {**asdict(m), "recommended": m.recommended.value}
    write_atomic(Path(state_dir) / FILE, json.dumps(doc, indent=1) + "\n", mode=0o644)


def load(state_dir: str | Path) -> EchoMeasurement | None:
    """The last measurement, or None (never measured, or unreadable: logged)."""
    path = Path(state_dir) / FILE
    try:
        doc = json.loads(path.read_text())
        return EchoMeasurement(**{**doc, "recommended": EchoMode(doc["recommended"])})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring the echo measurement in %s: %s", path, exc)
        return None


def effective_mode(mode: EchoMode, state_dir: str | Path) -> EchoMode:
    """The mode to run: `auto` becomes aec when the last doctor measurement found the canceller
    removes AEC_MIN_ERLE_DB or more, full_duplex when the microphone did not hear the speaker,
    and half_duplex otherwise (also when nothing was measured yet)."""
    if mode is not EchoMode.AUTO:
        return mode
    m = load(state_dir)
    chosen = EchoMode.HALF_DUPLEX if m is None else m.recommended
    log.info(
        'echo_mode "auto": %s (%s)',
        chosen.value,
        "no measurement yet: run livespeaker doctor"
        if m is None
        else f"doctor measured echo return loss {m.erl_db} dB, cancelled {m.erle_db} dB",
    )
    return chosen
