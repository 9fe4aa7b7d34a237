"""Check: the wake-word models load, how much CPU one 80 ms frame costs (openWakeWord's model and
microWakeWord's), and who is enrolled."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus
from device.events import MIC_RATE

NAME = "wakeword"
FRAME = 1280
"""80 ms at 16 kHz: openWakeWord's step."""
FRAMES = 50
"""Frames timed (4 s of audio)."""
WARN_FRACTION = 0.5
"""Warn when scoring takes more than this fraction of real time."""


def _voices(ctx: DoctorContext) -> tuple[list[str], list[str]]:
    """Names of the enrolled voices, and of voice files that cannot be read."""
    from device.wakeword.verifier import VoiceVerifier, voices_dir

    d = voices_dir(Path(ctx.cfg.state_dir))
    good: list[str] = []
    bad: list[str] = []
    for path in sorted(d.glob("*.npz")) if d.is_dir() else []:
        try:
            good.append(VoiceVerifier.load(path).name)
        except ValueError:
            bad.append(path.name)
    return good, bad


def check(ctx: DoctorContext) -> CheckResult:
    """Load the configured model (and microWakeWord's for it) and score FRAMES frames of low
    noise, timing CPU per frame."""
    from device.config import WakeAudience
    from device.wakeword.micro import micro_model_for
    from device.wakeword.models import load_model
    from device.wakeword.second_stage import second_stage_for

    name = ctx.cfg.wakeword.model
    t0 = time.perf_counter()
    try:
        model = load_model(name)
    except Exception as exc:  # a missing or broken model file: the user's problem to see
        return CheckResult(NAME, CheckStatus.FAIL, f"cannot load wake-word model {name!r}: {exc}")
    try:
        micro = micro_model_for(model.spec, ctx.cfg.wakeword)
    except Exception as exc:  # a broken install of the package that ships it
        return CheckResult(NAME, CheckStatus.FAIL, f"cannot load microWakeWord's model: {exc}")
    load_ms = (time.perf_counter() - t0) * 1000
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(FRAME * FRAMES) * 100).astype(np.int16)
    c0, w0 = time.process_time(), time.perf_counter()
    best = 0.0
    heard = 0
    for i in range(FRAMES):
        frame = audio[i * FRAME : (i + 1) * FRAME]
        best = max(best, model.score(frame))
        heard += micro is not None and micro.hears(micro.score(frame))
    cpu_ms = (time.process_time() - c0) * 1000 / FRAMES
    wall_ms = (time.perf_counter() - w0) * 1000 / FRAMES
    frame_ms = FRAME * 1000 / MIC_RATE
    numbers: dict[str, float | int | str | bool | list[int] | list[str] | None] = {
        "model": name,
        "load_ms": round(load_ms, 1),
        "cpu_ms_per_frame": round(cpu_ms, 2),
        "wall_ms_per_frame": round(wall_ms, 2),
        "frame_ms": frame_ms,
        "cpu_fraction": round(cpu_ms / frame_ms, 4),
        "max_score_on_noise": round(best, 4),
    }
    try:
        stage = second_stage_for(model.spec, ctx.cfg.wakeword)
    except ValueError as exc:
        return CheckResult(NAME, CheckStatus.FAIL, f"the wake word's second stage: {exc}")
    numbers["second_stage"] = stage is not None
    numbers["micro_wake_word"] = micro is not None
    voices, unreadable = _voices(ctx)
    who = ctx.cfg.wakeword.who_can_wake
    numbers["enrolled_voices"] = voices
    numbers["who_can_wake"] = str(who)
    detail = f"{name} loaded in {load_ms:.0f} ms; {cpu_ms:.2f} ms CPU per {frame_ms:.0f} ms frame ({cpu_ms / frame_ms:.1%})"
    detail += f"; second stage {'on' if stage is not None else 'off'}"
    detail += f"; microWakeWord's model {'on' if micro is not None else 'off'}"
    detail += f"; enrolled voices: {', '.join(voices) or 'none'} (who_can_wake = {who})"
    if unreadable:
        return CheckResult(
            NAME,
            CheckStatus.WARN,
            detail + f"; unreadable voice files: {', '.join(unreadable)}",
            numbers,
        )
    if who is WakeAudience.ENROLLED and not voices:
        return CheckResult(
            NAME, CheckStatus.WARN, detail + ": no voice can wake it, only the button", numbers
        )
    if cpu_ms / frame_ms > WARN_FRACTION:
        return CheckResult(NAME, CheckStatus.WARN, detail + ": too slow for this CPU", numbers)
    if best >= ctx.cfg.wakeword.threshold:
        return CheckResult(
            NAME, CheckStatus.WARN, detail + f"; triggers on noise (score {best:.2f})", numbers
        )
    if heard:
        return CheckResult(
            NAME, CheckStatus.WARN, detail + "; microWakeWord's model triggers on noise", numbers
        )
    return CheckResult(NAME, CheckStatus.PASS, detail, numbers)
