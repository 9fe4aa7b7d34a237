"""A device that disappears mid-run: the PulseAudio server (the whole "sound card") goes away.

Every stream dies the way an unplugged USB device's does (PortAudio's stream stops); the engine
must report AudioDeviceFailed, keep retrying with backoff while nothing is there, reopen when the
card is back (re-enumerating PortAudio), report AudioDeviceRecovered, and deliver audio again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import pytest

from device.audio.mic import Microphone
from device.audio.speaker import Speaker
from device.audio.supervisor import DeviceEvent
from device.config import AudioConfig
from device.events import MODEL_RATE, AudioDeviceFailed, AudioDeviceRecovered
from device.simhw.pulse import VirtualSoundCard
from tests.audio.rig import wait_flowing, wait_for

pytestmark = pytest.mark.integration


async def test_mic_and_speaker_reopen_after_the_card_vanishes(sound_card: VirtualSoundCard) -> None:
    events: list[DeviceEvent] = []
    cfg = AudioConfig()
    mic = Microphone(cfg, on_event=events.append)
    speaker = Speaker(cfg, tempfile.mkdtemp(), on_event=events.append)
    mic.supervisor.max_backoff_s = speaker.supervisor.max_backoff_s = 1.0
    card_down = False
    try:
        async with speaker.running(), mic.running():
            await wait_flowing(mic)
            asked = time.monotonic()
            speaker.play(b"\x10\x10" * MODEL_RATE * 10)  # gone in the middle of a reply ...
            # ... that has been heard for a while
            await wait_for(lambda: speaker.heard_until > asked + 0.3, 5, "playback")
            sound_card.stop()  # the card is gone
            card_down = True
            await asyncio.wait_for(speaker.drain(), 10)  # returns: nothing more can be played
            assert not speaker.is_playing
            speaker.play(b"\0\0" * 2400)  # dropped quietly while there is no device
            await wait_for(lambda: len(events) >= 2, 20, "failure events")
            assert {type(e) for e in events} == {AudioDeviceFailed}
            assert {e.direction for e in events} == {"input", "output"}
            await asyncio.sleep(2.0)  # several retries while nothing is there: still one event each
            assert len(events) == 2
            sound_card.start()  # plugged back in
            card_down = False
            await wait_for(lambda: len(events) >= 4, 60, "recovery events")
            assert [type(e) for e in events[2:]] == [AudioDeviceRecovered] * 2
            await wait_flowing(mic, limit_s=30)
            speaker.play(b"\0\0" * 2400)
            await asyncio.wait_for(speaker.drain(), 10)
    finally:
        if card_down:
            sound_card.start()  # leave the session's card running for the next tests


async def test_an_idle_speaker_reports_the_card_vanishing_before_the_next_sound(
    sound_card: VirtualSoundCard,
) -> None:
    """Between sounds the writer makes no calls into PortAudio, yet a card gone then must be
    reported then (and the speaker reopened once it is back), not found out by the next sound:
    the wake chime would be what is lost."""
    events: list[DeviceEvent] = []
    speaker = Speaker(AudioConfig(), tempfile.mkdtemp(), on_event=events.append)
    speaker.supervisor.max_backoff_s = 1.0
    card_down = False
    try:
        async with speaker.running():
            speaker.play(b"\0\0" * 2400)
            await asyncio.wait_for(speaker.drain(), 10)
            await asyncio.sleep(0.5)  # idle
            sound_card.stop()
            card_down = True
            gone = time.monotonic()
            await wait_for(lambda: len(events) >= 1, 10, "the failure event")
            print(f"reported {time.monotonic() - gone:.2f} s after the card went, while idle")
            assert [type(e) for e in events] == [AudioDeviceFailed]
            sound_card.start()
            card_down = False
            await wait_for(lambda: len(events) >= 2, 60, "the recovery event")
            assert type(events[1]) is AudioDeviceRecovered
            speaker.play(b"\0\0" * 2400)
            await asyncio.wait_for(speaker.drain(), 10)
    finally:
        if card_down:
            sound_card.start()
