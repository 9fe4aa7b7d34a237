"""Device resolution on the rig's real PortAudio (ALSA devices `pulse` and `default`)."""

from __future__ import annotations

import pytest

from device.audio import devices
from device.audio.devices import DeviceBusy, DeviceNotFound, DeviceOpenFailed, Direction
from device.audio.mic import Microphone
from device.config import AudioConfig
from device.simhw.pulse import VirtualSoundCard


@pytest.mark.integration
def test_unknown_name_lists_available_devices(sound_card: VirtualSoundCard) -> None:
    with pytest.raises(DeviceNotFound) as err:
        devices.resolve("USB PnP Sound Device", Direction.INPUT)
    msg = str(err.value)
    assert "no input audio device matching 'USB PnP Sound Device'" in msg
    for d in devices.list_devices():
        assert f"[{d.index}] {d.name} (ALSA): {d.max_input_channels} in" in msg
    assert "Hz" in msg


@pytest.mark.integration
def test_name_substring_index_and_default(sound_card: VirtualSoundCard) -> None:
    by_name = devices.resolve("PULS", Direction.OUTPUT)
    assert by_name.name == "pulse"
    assert devices.resolve(by_name.index, Direction.OUTPUT) == by_name
    assert devices.resolve("", Direction.INPUT).name == "default"
    with pytest.raises(DeviceNotFound, match="with index 99"):
        devices.resolve(99, Direction.INPUT)


@pytest.mark.integration
def test_native_format_is_queried_and_overridable(sound_card: VirtualSoundCard) -> None:
    dev = devices.resolve("default", Direction.INPUT)
    native = devices.choose_format(dev, Direction.INPUT)
    assert native.rate == round(dev.default_samplerate)
    assert native.channels == 2  # 32-channel "pulse" device: opened as stereo, not 32
    forced = devices.choose_format(dev, Direction.INPUT, rate=48000, channels=1)
    assert (forced.rate, forced.channels) == (48000, 1)


@pytest.mark.integration
async def test_microphone_start_fails_fast_with_the_listing(sound_card: VirtualSoundCard) -> None:
    mic = Microphone(AudioConfig(input_device="Jabra Speak 410"))
    with pytest.raises(DeviceNotFound, match=r"available devices:\n  \[0\] pulse"):
        async with mic.running(open_timeout_s=30):
            pass


@pytest.mark.unit
def test_busy_device_gets_a_clear_message() -> None:
    import sounddevice as sd

    dev = devices.DeviceInfo(3, "USB Audio Device: - (hw:2,0)", "ALSA", 1, 0, 48000.0)
    busy = sd.PortAudioError(
        "Error opening RawInputStream: Device unavailable", -9985, (0, -16, "Device busy")
    )
    err = devices.open_error(busy, dev, Direction.INPUT)
    assert isinstance(err, DeviceBusy)
    assert "'USB Audio Device: - (hw:2,0)' is busy: another program is using it" in str(err)
    other = sd.PortAudioError("Invalid sample rate", -9997)
    assert isinstance(devices.open_error(other, dev, Direction.INPUT), DeviceOpenFailed)
