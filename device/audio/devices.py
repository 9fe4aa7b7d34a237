"""Finding audio devices and choosing how to open them: the one place that asks PortAudio.

- `resolve(ref, direction)`: "" (system default), a name substring (case-insensitive; an exact name
  wins) or a PortAudio index -> `DeviceInfo`. A miss raises `DeviceNotFound`, whose message lists
  every device (index, name, in/out channels, default rate).
- `choose_format(dev, direction)`: the device's own rate and a channel count it accepts, checked with
  PortAudio before any stream is opened.
- `open_error(exc, ...)`: turns a PortAudioError into `DeviceBusy` ("used by another program") or
  `DeviceOpenFailed` with a message a user can act on.
- `reinitialize()`: re-enumerates PortAudio (a replugged USB device gets a new index), but only
  while no stream is open; streams register themselves with `stream_opened()/stream_closed()`.

sounddevice is imported lazily: PortAudio enumerates ALSA devices when it is first initialised.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from device.audio import alsa_log

log = logging.getLogger(__name__)

PA_DEVICE_UNAVAILABLE = -9985
"""PaErrorCode when ALSA says the device is busy or gone."""
EBUSY = 16

LOCK = threading.RLock()
"""Held around every PortAudio open/close/enumeration: they are not safe to run concurrently."""
_open_streams = 0


class Direction(StrEnum):
    """Which way audio flows; also the `direction` of AudioDeviceFailed/Recovered."""

    INPUT = "input"
    """The microphone."""
    OUTPUT = "output"
    """The speaker."""


class AudioDeviceError(Exception):
    """An audio device could not be found or opened; str() is the message for the user."""


class DeviceNotFound(AudioDeviceError):
    """No device matches the configured name/index (the message lists what exists)."""


class DeviceBusy(AudioDeviceError):
    """The device exists but another program holds it."""


class DeviceOpenFailed(AudioDeviceError):
    """PortAudio refused to open the device for another reason."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def channels(self, direction: Direction) -> int:
        """Maximum channel count in that direction."""
        if direction is Direction.INPUT:
            return self.max_input_channels
        return self.max_output_channels

    def describe(self) -> str:
        """One line for device listings."""
        return (
            f"[{self.index}] {self.name} ({self.hostapi}): {self.max_input_channels} in, "
            f"{self.max_output_channels} out, {self.default_samplerate:.0f} Hz"
        )


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """How a stream is opened: the device, its rate and channel count."""

    device: DeviceInfo
    rate: int
    channels: int


def _sd() -> Any:
    alsa_log.install()  # before PortAudio starts
    with alsa_log.listing():  # PortAudio starts with its import, trying every ALSA PCM
        import sounddevice

    return sounddevice


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows, in index order."""
    sd = _sd()
    with LOCK:
        apis = [str(a["name"]) for a in sd.query_hostapis()]
        return [
            DeviceInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=apis[int(d["hostapi"])] if int(d["hostapi"]) < len(apis) else "?",
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
            )
            for d in sd.query_devices()
        ]


def format_devices(devices: list[DeviceInfo]) -> str:
    """A listing for error messages and `--list` output."""
    if not devices:
        return "  (no audio devices found: is the sound card connected and the driver loaded?)"
    return "\n".join(f"  {d.describe()}" for d in devices)


def _not_found(what: str, direction: Direction, devices: list[DeviceInfo]) -> DeviceNotFound:
    return DeviceNotFound(
        f"no {direction.value} audio device {what}; available devices:\n{format_devices(devices)}"
    )


def resolve(ref: str | int, direction: Direction) -> DeviceInfo:
    """The device for a config value: "" = system default, a name substring, or an index."""
    devices = list_devices()
    usable = [d for d in devices if d.channels(direction) > 0]
    if isinstance(ref, int):
        for d in usable:
            if d.index == ref:
                return d
        raise _not_found(f"with index {ref}", direction, devices)
    if ref == "":
        with LOCK:
            default = _sd().default.device[0 if direction is Direction.INPUT else 1]
        index = int(default) if default is not None else -1
        for d in usable:
            if d.index == index:
                return d
        if usable:  # no default configured: the first device that can do it
            return usable[0]
        raise _not_found("(system default)", direction, devices)
    wanted = ref.casefold()
    exact = [d for d in usable if d.name.casefold() == wanted]
    partial = [d for d in usable if wanted in d.name.casefold()]
    if exact or partial:
        found = (exact or partial)[0]
        if not exact and len(partial) > 1:
            log.warning(
                "audio %s %r matches %d devices; using %s",
                direction.value,
                ref,
                len(partial),
                found.describe(),
            )
        return found
    raise _not_found(f"matching {ref!r}", direction, devices)


def _check(direction: Direction, index: int, rate: int, channels: int) -> bool:
    sd = _sd()
    check = sd.check_input_settings if direction is Direction.INPUT else sd.check_output_settings
    try:
        with LOCK:
            check(device=index, samplerate=rate, channels=channels, dtype="int16")
    except Exception:
        return False
    return True


def choose_format(
    dev: DeviceInfo, direction: Direction, rate: int | None = None, channels: int | None = None
) -> StreamFormat:
    """The device's native rate and a channel count it accepts (overrides are tried first).

    Channels: stereo or mono when the device offers them (a 32-channel "pulse" device is not opened
    with 32), else everything it has (mic-array HATs only open with all their channels).
    """
    most = dev.channels(direction)
    native = round(dev.default_samplerate) or 48000
    rates = [rate] if rate else list(dict.fromkeys([native, 48000, 44100, 16000]))
    chans = [channels] if channels else list(dict.fromkeys([min(most, 2), 1, most]))
    for r in rates:
        for c in chans:
            if 0 < c <= max(most, 1) and _check(direction, dev.index, r, c):
                return StreamFormat(dev, r, c)
    raise DeviceOpenFailed(
        f"{direction.value} device {dev.describe()} accepts none of the rates {rates} "
        f"with channel counts {chans}"
    )


def open_error(exc: BaseException, dev: DeviceInfo, direction: Direction) -> AudioDeviceError:
    """A user-facing error for a failed stream open."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    code = args[1] if len(args) > 1 else None
    host = args[2] if len(args) > 2 else None
    host_code = host[1] if isinstance(host, tuple) and len(host) > 1 else None
    if code == PA_DEVICE_UNAVAILABLE or host_code == -EBUSY or "busy" in str(exc).lower():
        return DeviceBusy(
            f"{direction.value} device {dev.name!r} is busy: another program is using it "
            f"(stop it, or use a shared device such as 'default' or 'pulse'); retrying. ({exc})"
        )
    return DeviceOpenFailed(f"cannot open {direction.value} device {dev.describe()}: {exc}")


def stream_opened() -> None:
    """Record that a stream was opened (blocks re-enumeration)."""
    global _open_streams
    with LOCK:
        _open_streams += 1


def stream_closed() -> None:
    """Record that a stream was closed."""
    global _open_streams
    with LOCK:
        _open_streams = max(0, _open_streams - 1)


def close_stream(stream: Any) -> None:
    """Close a PortAudio stream this engine opened and record it (even if closing fails)."""
    try:
        stream.close(ignore_errors=True)
    finally:
        stream_closed()


def reinitialize() -> bool:
    """Re-enumerate PortAudio devices if no stream is open; returns whether it did."""
    with LOCK:
        if _open_streams:
            return False
        sd = _sd()
        with alsa_log.listing():
            sd._terminate()
            sd._initialize()
        log.debug("PortAudio re-initialised: %d devices", len(sd.query_devices()))
        return True
