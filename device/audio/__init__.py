"""The audio engine: any microphone and speaker, resampled, bridged to asyncio.

Modules (one job each):
- `devices`: find a device by name/index, choose its native format, explain open errors.
- `supervisor`: keep a stream open; reopen with backoff, emitting AudioDeviceFailed/Recovered.
- `mic`: `Microphone` -> 16 kHz mono `AudioBlock`s fanned out to gated drop-oldest queues.
- `speaker`: `Speaker` -> play / flush / drain / is_playing / volume / play_earcon; `output`:
  the stream that plays it (a writer thread on a blocking stream, or PortAudio's callback with
  echo_mode "aec").
- `echo`: `EchoGate` (half duplex: no upload while the speaker plays, plus a tail).
- `aec`: `EchoReference` + `EchoCanceller` (echo_mode "aec": the speaker's sound removed from
  the microphone, aligned by PortAudio's DAC/ADC times); `echo_room`: the room measurement that
  doctor makes and echo_mode "auto" reads.
- `earcons`: generated wake/end/mute/error sounds; `convert`, `queues`, `playback`, `volume`:
  the pure parts.

Typical wiring (the appliance):

    speaker = Speaker(cfg.audio, cfg.state_dir, on_event=on_audio_event)
    mic = Microphone(cfg.audio, on_event=on_audio_event)
    gate = EchoGate(cfg.audio.echo_mode, cfg.audio.echo_tail_ms,
                    captured_at=mic.captured_at, heard_until=lambda: speaker.heard_until,
                    reply_heard_until=lambda: speaker.reply_heard_until,
                    earcon_tail_ms=cfg.audio.earcon_tail_ms)
    wake_q = mic.add_consumer("wakeword", 50)
    upload_q = mic.add_consumer("upload", 50, gate=gate)
    tg.create_task(speaker.run(), name="speaker")
    tg.create_task(mic.run(), name="microphone")
"""

from device.audio.devices import (
    AudioDeviceError,
    DeviceBusy,
    DeviceNotFound,
    DeviceOpenFailed,
    Direction,
)
from device.audio.earcons import Earcon
from device.audio.echo import EchoGate
from device.audio.mic import MicProgress, Microphone
from device.audio.queues import DropOldestQueue
from device.audio.speaker import Speaker

__all__ = [
    "AudioDeviceError",
    "DeviceBusy",
    "DeviceNotFound",
    "DeviceOpenFailed",
    "Direction",
    "DropOldestQueue",
    "Earcon",
    "EchoGate",
    "MicProgress",
    "Microphone",
    "Speaker",
]
