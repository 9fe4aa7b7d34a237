"""Check: the configured microphone and speaker exist, and which sample rates they accept."""

from __future__ import annotations

from typing import Any

from device.audio import devices
from device.audio.devices import Direction
from device.config import DeviceRef
from device.doctor.context import DoctorContext
from device.doctor.result import CheckResult, CheckStatus

NAME = "audio_devices"
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
"""Rates probed on each device."""


def _find(ref: DeviceRef, kind: str) -> tuple[int | None, str]:
    """PortAudio index of `ref`, resolved exactly as the daemon resolves it, or the reason."""
    try:
        return devices.resolve(ref, Direction(kind)).index, ""
    except devices.DeviceNotFound as exc:
        return None, str(exc)


def _rates(sd: Any, index: int, kind: str) -> list[int]:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    ok = []
    for rate in RATES:
        try:
            check(device=index, samplerate=rate, channels=1, dtype="int16")
        except (ValueError, sd.PortAudioError):
            continue
        ok.append(rate)
    return ok


def check(ctx: DoctorContext) -> CheckResult:
    """Resolve both devices and probe their rates; fail if either is missing or accepts nothing."""
    import sounddevice as sd

    numbers: dict[str, Any] = {"devices": len(list(sd.query_devices()))}
    problems: list[str] = []
    found: list[str] = []
    for kind, ref in (
        ("input", ctx.cfg.audio.input_device),
        ("output", ctx.cfg.audio.output_device),
    ):
        index, why = _find(ref, kind)
        if index is None:
            problems.append(f"{kind}: {why}")
            continue
        info = sd.query_devices(index)
        rates = _rates(sd, index, kind)
        numbers[f"{kind}_index"] = index
        numbers[f"{kind}_name"] = str(info["name"])
        numbers[f"{kind}_default_rate"] = int(info["default_samplerate"])
        numbers[f"{kind}_rates"] = rates
        if not rates:
            problems.append(
                f"{kind} {info['name']!r} accepts none of {list(RATES)} Hz (mono int16)"
            )
            continue
        default = int(info["default_samplerate"])
        if kind == "input":
            ctx.input_device = index
            ctx.input_rate = (
                16000 if 16000 in rates else (default if default in rates else rates[-1])
            )
        else:
            ctx.output_device = index
            ctx.output_rate = default if default in rates else rates[-1]
        found.append(f"{kind} {info['name']!r} ({'/'.join(str(r // 1000) for r in rates)} kHz)")
    if problems:
        return CheckResult(NAME, CheckStatus.FAIL, "; ".join(problems), numbers)
    return CheckResult(NAME, CheckStatus.PASS, ", ".join(found), numbers)
