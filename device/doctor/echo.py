"""Check: how much of the speaker the microphone hears and how much of it echo cancellation
removes; recommends echo_mode and remembers the measurement for echo_mode = "auto"."""

from __future__ import annotations

import numpy as np

from device.audio.convert import MicConverter
from device.audio.echo_room import (
    AEC_MIN_ERLE_DB,
    STEADY_MS,
    EchoMeasurement,
    measure,
    probe_signal,
    save,
)
from device.config import EchoMode
from device.doctor.audio_io import AudioTimeout, device_failed, play_while_capturing
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus
from device.events import MIC_RATE

NAME = "echo"
LEAD_S = 1.0
WARMUP_S = 0.5
ATTEMPTS = 3
"""A measurement whose echo delay wandered more than STEADY_MS is taken again, up to this many
times, and the steadiest kept: a passing load spike must not decide the echo mode."""


def check(ctx: DoctorContext) -> CheckResult:
    """Play 6 s of speech while recording; measure the echo and cancel it."""
    import sounddevice as sd

    if ctx.output_device is None or ctx.output_rate is None:
        return CheckResult(NAME, CheckStatus.SKIP, "no usable speaker (see audio_devices)")
    if ctx.input_device is None or ctx.input_rate is None:
        return CheckResult(NAME, CheckStatus.SKIP, "no usable microphone to listen with")
    kept: EchoMeasurement | None = None
    wandered: list[float] = []
    taken = 0
    while taken < ATTEMPTS:
        taken += 1
        try:
            m = _measure_once(ctx)
        except (AudioTimeout, sd.PortAudioError) as exc:
            return device_failed(NAME, "test signal", exc)
        except ValueError as exc:  # e.g. a recording cut short
            return CheckResult(NAME, CheckStatus.WARN, f"echo not measured: {exc}")
        # A measurement that heard the echo beats one that did not (the echo was there), and
        # among those the steadiest wins.
        if kept is None or (not m.heard, _wander(m)) < (not kept.heard, _wander(kept)):
            kept = m
        if _wander(m) <= STEADY_MS:  # steady, or nothing heard this time
            break
        wandered.append(_wander(m))
    assert kept is not None
    m = kept
    configured = ctx.cfg.audio.echo_mode
    numbers: dict[str, float | int | str | bool | list[int] | list[str] | None] = {
        "echo_heard": m.heard,
        "echo_delay_ms": m.delay_ms,
        "echo_delay_wander_ms": m.wander_ms,
        "measurements": taken,
        "echo_return_loss_db": m.erl_db,
        "erle_db": m.erle_db,
        "recommended_echo_mode": m.recommended.value,
        "configured_echo_mode": configured.value,
    }
    stored = ""
    try:
        save(ctx.cfg.state_dir, m)
        stored = '; remembered for echo_mode = "auto"'
    except OSError as exc:
        stored = f"; not remembered ({exc})"
    if not m.heard:
        detail = "the microphone does not hear the speaker: full_duplex is safe"
    else:
        detail = (
            f"echo {m.erl_db:.0f} dB below what is played, {m.delay_ms:.0f} ms later (this "
            f"test's buffers included); echo cancellation removes {m.erle_db:.0f} dB of it"
        )
        if m.recommended is EchoMode.AEC:
            detail += " (aec: talk over answers)"
        else:
            detail += f" (less than {AEC_MIN_ERLE_DB:.0f} dB: keep half_duplex)"
        if _wander(m) > STEADY_MS:
            detail += (
                f"; the echo's delay wandered {_wander(m):.0f} ms while the probe played (the "
                f"steadiest of {taken} measurements; a busy machine or a resampling audio path): "
                "measure again when the speaker is idle"
            )
        elif wandered:
            detail += (
                f"; measured {taken} times: the delay wandered "
                f"{', '.join(f'{w:.0f}' for w in wandered)} ms before a steady measurement"
            )
    detail += f"; recommended echo_mode = {m.recommended.value}{stored}"
    if configured is EchoMode.AEC and m.heard and m.recommended is not EchoMode.AEC:
        return CheckResult(NAME, CheckStatus.WARN, detail + " (configured: aec)", numbers)
    if _wander(m) > STEADY_MS:
        return CheckResult(NAME, CheckStatus.WARN, detail, numbers)
    return CheckResult(NAME, CheckStatus.PASS, detail, numbers)


def _wander(m: EchoMeasurement) -> float:
    """How far the echo's delay moved (0 when nothing was heard: nothing to follow)."""
    return m.wander_ms or 0.0


def _measure_once(ctx: DoctorContext) -> EchoMeasurement:
    """Play the probe while recording and measure its echo."""
    import soxr

    assert ctx.output_device is not None and ctx.output_rate is not None
    assert ctx.input_device is not None and ctx.input_rate is not None
    signal = probe_signal()
    out = np.clip(
        soxr.resample(signal.astype(np.float32), MIC_RATE, ctx.output_rate), -32768, 32767
    )
    played, rec = play_while_capturing(
        ctx.output_device,
        ctx.output_rate,
        out.astype(np.int16),
        ctx.input_device,
        ctx.input_rate,
        lead_s=LEAD_S,
        warmup_s=WARMUP_S,
    )
    recorded = MicConverter(ctx.input_rate, 1).convert(rec.samples.tobytes())
    # The echo is searched from a little before the probe left for the speaker.
    played_at = played.input_frame * MIC_RATE // ctx.input_rate + int((WARMUP_S - 0.2) * MIC_RATE)
    return measure(signal, recorded, played_at=played_at)
