"""Check: the microphone delivers audio; its level, clipping and noise floor."""

from __future__ import annotations

import numpy as np

from device.doctor.audio_io import AudioTimeout, block_rms, capture, dbfs, device_failed
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus

NAME = "microphone"
CLIP_LEVEL = 32700
"""Samples at or above this magnitude count as clipped."""
CLIP_WARN_FRACTION = 0.001
"""More clipped samples than this fraction: warn (gain too high)."""
LOUD_FLOOR_DBFS = -30.0
"""A noise floor above this is too loud for reliable wake words."""


def check(ctx: DoctorContext) -> CheckResult:
    """Record a few seconds and report RMS, peak, clipping and the noise floor in dBFS."""
    import sounddevice as sd

    if ctx.input_device is None or ctx.input_rate is None:
        return CheckResult(NAME, CheckStatus.SKIP, "no usable microphone (see audio_devices)")
    rate = ctx.input_rate
    try:
        rec = capture(ctx.input_device, rate, ctx.mic_seconds)
    except (AudioTimeout, sd.PortAudioError) as exc:
        return device_failed(NAME, "recording", exc)
    x = rec.samples
    blocks = block_rms(x, rate)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
    peak = int(np.abs(x.astype(np.int32)).max()) if len(x) else 0
    clipped = float(np.mean(np.abs(x.astype(np.int32)) >= CLIP_LEVEL)) if len(x) else 0.0
    floor = float(np.percentile(blocks, 10)) if len(blocks) else 0.0
    numbers: dict[str, float | int | str | bool | list[int] | list[str] | None] = {
        "seconds": round(len(x) / rate, 3),
        "rate": rate,
        "rms_dbfs": round(float(dbfs(rms)), 1),
        "peak_dbfs": round(float(dbfs(peak)), 1),
        "noise_floor_dbfs": round(float(dbfs(floor)), 1),
        "clipped_fraction": round(clipped, 5),
        "overflows": rec.overflows,
    }
    ctx.notes["mic_noise_floor_dbfs"] = numbers["noise_floor_dbfs"]
    summary = (
        f"{numbers['seconds']} s at {rate} Hz: RMS {numbers['rms_dbfs']} dBFS, "
        f"peak {numbers['peak_dbfs']} dBFS, noise floor {numbers['noise_floor_dbfs']} dBFS"
    )
    if peak == 0:
        return CheckResult(NAME, CheckStatus.WARN, f"{summary}: digital silence (muted?)", numbers)
    if clipped > CLIP_WARN_FRACTION:
        return CheckResult(
            NAME, CheckStatus.WARN, f"{summary}: {clipped:.2%} clipped, lower the gain", numbers
        )
    if floor > 32768 * 10 ** (LOUD_FLOOR_DBFS / 20):
        return CheckResult(
            NAME, CheckStatus.WARN, f"{summary}: noisy room or gain too high", numbers
        )
    return CheckResult(NAME, CheckStatus.PASS, summary, numbers)
