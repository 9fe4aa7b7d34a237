"""Half duplex on the rig: while the speaker plays, the upload consumer gets no microphone audio
while the wake-word consumer keeps receiving everything (so "Hey Jarvis, stop" still works)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from device.audio.echo import EchoGate
from device.audio.mic import Microphone
from device.audio.speaker import Speaker
from device.config import AudioConfig, EchoMode
from device.events import MIC_RATE, MODEL_RATE
from device.simhw.pulse import VirtualSoundCard, read_wav
from tests.audio.rig import samples, take_all, wait_flowing, wait_for
from tests.conftest import SpeechFactory
from tests.simhw.test_rig import best_correlation

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", [EchoMode.HALF_DUPLEX, EchoMode.FULL_DUPLEX])
async def test_upload_is_gated_while_the_speaker_plays(
    sound_card: VirtualSoundCard,
    speech: SpeechFactory,
    speech_wav: Callable[..., Path],
    mode: EchoMode,
) -> None:
    cfg = AudioConfig(echo_mode=mode, echo_tail_ms=300)
    speaker = Speaker(cfg, tempfile.mkdtemp())
    mic = Microphone(cfg)
    gate = EchoGate(cfg.echo_mode, cfg.echo_tail_ms, lambda: speaker.is_playing)
    upload = mic.add_consumer("upload", 100_000, gate=gate)
    wake = mic.add_consumer("wakeword", 100_000)
    user = speech_wav("hey jarvis, stop. what is the time in tokyo right now, please?")
    ref, _ = read_wav(user)
    reply = speech("it is half past nine", MODEL_RATE)
    async with speaker.running(), mic.running():
        await wait_flowing(mic)
        player = sound_card.play_into_mic(user)  # the user talks over the reply
        await asyncio.sleep(0.8)
        play_from = mic.position
        speaker.play(reply.tobytes())
        await asyncio.wait_for(speaker.drain(), 20)
        play_to = mic.position
        after_tail = play_to + MIC_RATE * (cfg.echo_tail_ms + 200) // 1000
        assert await asyncio.wait_for(asyncio.to_thread(player.wait, 30), 35) == 0
        # pacat exits with its last audio still on the way through PulseAudio: capture 1 s more.
        until = max(after_tail + MIC_RATE // 5, mic.position + MIC_RATE)
        await wait_for(lambda: mic.position > until, 20, "the rest of the user's speech")
    uploaded, heard = take_all(upload), take_all(wake)
    during = [b for b in uploaded if b.end > play_from and b.start < play_to]
    wake_during = [b for b in heard if b.end > play_from and b.start < play_to]
    assert (play_to - play_from) / MIC_RATE > 1.0
    # The wake-word consumer heard the user all the way through, the reply included.
    assert best_correlation(ref, samples(heard)) > 0.9
    assert len(wake_during) >= (play_to - play_from) // (MIC_RATE * cfg.block_ms // 1000) - 1
    assert np.abs(samples(wake_during).astype(float)).max() > 1000  # real speech in that span
    if mode is EchoMode.HALF_DUPLEX:
        assert during == []
        assert gate.blocked > 0
        assert any(b.start < play_from for b in uploaded)  # open before the reply ...
        assert any(b.start >= after_tail for b in uploaded)  # ... and again after the tail
    else:
        assert len(during) == len(wake_during)
