"""Microphone on the rig: speech played into `micfeed` arrives as 16 kHz mono blocks, intact."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from device.audio.mic import Microphone
from device.config import AudioConfig
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard, read_wav
from tests.audio.rig import samples, take_all, wait_flowing, wait_for
from tests.simhw.test_rig import best_correlation

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("rate", "channels", "expect"),
    [
        (None, None, (44100, 2)),  # what the device reports as native (ALSA pulse: 44.1 kHz)
        (48000, 2, (48000, 2)),
        (44100, 1, (44100, 1)),
    ],
    ids=["native", "48k-stereo", "44k1-mono"],
)
async def test_speech_arrives_as_16k_mono_blocks(
    sound_card: VirtualSoundCard,
    speech_wav: Callable[..., Path],
    rate: int | None,
    channels: int | None,
    expect: tuple[int, int],
) -> None:
    wav = speech_wav("testing the microphone, one two three")
    ref, ref_rate = read_wav(wav)
    assert ref_rate == MIC_RATE
    cfg = AudioConfig(block_ms=20)
    mic = Microphone(cfg, rate=rate, channels=channels)
    q = mic.add_consumer("test", max_blocks=100_000)
    async with mic.running():
        assert mic.format is not None
        assert (mic.format.rate, mic.format.channels) == expect
        await wait_flowing(mic)
        player = sound_card.play_into_mic(wav)
        assert await asyncio.wait_for(asyncio.to_thread(player.wait, 30), 35) == 0
        # pacat exits with its last audio still on the way through PulseAudio: capture 1 s more.
        until = mic.position + MIC_RATE
        await wait_for(lambda: mic.position > until, 20, "the rest of the speech")
    blocks = take_all(q)
    assert all(len(b.pcm) == 2 * MIC_RATE * 20 // 1000 for b in blocks)
    assert all(b.start == a.end for a, b in itertools.pairwise(blocks))
    assert best_correlation(ref, samples(blocks)) > 0.9
    assert mic.progress.blocks >= len(blocks)
    assert mic.progress.last_block_monotonic is not None


async def test_slow_consumer_loses_oldest_blocks_only(sound_card: VirtualSoundCard) -> None:
    mic = Microphone(AudioConfig())
    slow = mic.add_consumer("slow", max_blocks=5)
    fast = mic.add_consumer("fast", max_blocks=10_000)
    async with mic.running():
        await wait_flowing(mic)
        await asyncio.sleep(0.3)
    kept = take_all(slow)
    everything = take_all(fast)
    assert len(kept) == 5
    assert slow.dropped == len(everything) - 5
    assert kept == everything[-5:]


async def test_restart_for_mute_keeps_start_on_real_time(sound_card: VirtualSoundCard) -> None:
    mic = Microphone(AudioConfig())
    q = mic.add_consumer("test", max_blocks=100_000)
    async with mic.running():
        await wait_flowing(mic)
    before = take_all(q)
    await asyncio.sleep(2.0)  # muted: the stream is closed
    async with mic.running():
        await wait_flowing(mic)
    after = take_all(q)
    gap_s = (after[0].start - before[-1].end) / MIC_RATE
    assert gap_s > 1.9  # at least the closed time (plus the new stream's start-up)
    assert all(b.start == a.end for a, b in itertools.pairwise(after))


async def test_overflows_are_summarised_not_logged_per_block(
    sound_card: VirtualSoundCard, caplog: pytest.LogCaptureFixture
) -> None:
    mic = Microphone(AudioConfig(), summary_interval_s=0.5)
    slow = mic.add_consumer("slow", max_blocks=2)
    with caplog.at_level(logging.DEBUG, logger="device.audio"):
        async with mic.running():
            await wait_flowing(mic)
            await asyncio.sleep(1.2)
    summaries = [r.getMessage() for r in caplog.records if "dropped by slow" in r.getMessage()]
    assert summaries
    assert sum(int(s.split(" blocks dropped")[0].split()[-1]) for s in summaries) == slow.dropped
    assert len(caplog.records) < mic.progress.blocks / 5  # a summary, not a line per block


async def test_idle_hands_over_80_ms_at_a_time_and_a_conversation_each_block(
    sound_card: VirtualSoundCard,
) -> None:
    cfg = AudioConfig(block_ms=20)
    mic = Microphone(cfg, rate=16000, channels=1)
    q = mic.add_consumer("test", max_blocks=100_000)
    chunks: list[int] = []
    on_raw = mic._on_raw

    def spy(generation: int, raw: bytes, overflowed: bool, captured_at: float) -> None:
        chunks.append(len(raw))
        on_raw(generation, raw, overflowed, captured_at)

    mic._on_raw = spy  # type: ignore[method-assign]  # counts the hand-overs to the loop
    block_bytes = 2 * MIC_RATE * cfg.block_ms // 1000
    async with mic.running():
        await wait_flowing(mic)
        idle = list(chunks)
        mic.low_latency(True)
        chunks.clear()
        await wait_flowing(mic)
        busy = list(chunks)
        mic.low_latency(False)
        chunks.clear()
        await wait_flowing(mic)
        idle_again = list(chunks)
    # At most one hand-over per switch carries what was gathered before it.
    assert sum(n == 4 * block_bytes for n in idle) >= len(idle) - 1
    assert sum(n == block_bytes for n in busy) >= len(busy) - 1
    assert sum(n == 4 * block_bytes for n in idle_again) >= len(idle_again) - 1
    blocks = take_all(q)
    assert all(b.start == a.end for a, b in itertools.pairwise(blocks))  # nothing lost or doubled
