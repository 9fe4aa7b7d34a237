"""Unit tests for the audio engine's pure parts: framing, conversion, queues, gate, buffer, volume."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from device.audio import earcons
from device.audio.convert import BlockFramer, MicConverter, SpeakerConverter
from device.audio.earcons import Earcon
from device.audio.echo import EchoGate
from device.audio.playback import PlaybackBuffer
from device.audio.queues import DropOldestQueue
from device.audio.volume import VolumeStore, gain
from device.config import EchoMode
from device.events import AudioBlock, ErrorKind

pytestmark = pytest.mark.unit


def tone(freq: float, rate: int, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def dominant_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


# --- framing --------------------------------------------------------------------------------


def test_framer_emits_fixed_blocks_with_continuous_start_indices() -> None:
    framer = BlockFramer(320)
    rng = np.random.default_rng(1)
    data = rng.integers(-1000, 1000, 5000).astype(np.int16)
    blocks: list[AudioBlock] = []
    pos = 0
    for size in (7, 300, 1, 999, 2000, 1693):  # odd chunk sizes, as a resampler produces
        blocks += framer.feed(data[pos : pos + size])
        pos += size
    assert [b.start for b in blocks] == [i * 320 for i in range(5000 // 320)]
    assert all(len(b.pcm) == 640 for b in blocks)
    joined = np.frombuffer(b"".join(b.pcm for b in blocks), np.int16)
    assert np.array_equal(joined, data[: len(joined)])
    assert framer.position == blocks[-1].end


def test_framer_skip_keeps_indices_equal_to_time() -> None:
    framer = BlockFramer(160)
    framer.feed(np.zeros(100, np.int16))
    framer.skip(1000)
    (block,) = framer.feed(np.ones(160, np.int16))
    assert block.start == 1000
    assert np.frombuffer(block.pcm, np.int16).tolist() == [1] * 160


# --- conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (44100, 1), (44100, 2), (16000, 1)])
def test_mic_converter_makes_16k_mono_in_streaming_chunks(rate: int, channels: int) -> None:
    src = tone(1000, rate, 1.0)
    frames = np.repeat(src[:, None], channels, axis=1).astype(np.int16)
    if channels == 2:
        frames[:, 1] = 0  # a dead second channel: the mix keeps the tone, at half level
    conv = MicConverter(rate, channels)
    chunks = [conv.convert(frames[i : i + 441].tobytes()) for i in range(0, len(frames), 441)]
    out = np.concatenate(chunks)
    assert out.dtype == np.int16
    assert abs(len(out) - 16000) < 500  # streaming: only the filter delay (~20 ms) is inside
    assert abs(dominant_freq(out[2000:14000].astype(float), 16000) - 1000) < 5
    expected_rms = 8000 / np.sqrt(2) / channels
    assert np.sqrt(np.mean(out[2000:14000].astype(float) ** 2)) == pytest.approx(
        expected_rms, rel=0.05
    )


def test_speaker_converter_tail_comes_out_with_last() -> None:
    conv = SpeakerConverter(24000, 44100)
    x = tone(500, 24000, 0.5).astype(np.int16)
    body = conv.convert(x.tobytes())
    tail = conv.convert(b"", last=True)
    assert len(body) + len(tail) == pytest.approx(0.5 * 44100, abs=2)
    y = np.concatenate((body, tail))
    assert np.max(np.abs(y)) == pytest.approx(8000 / 32768, rel=0.05)
    assert abs(dominant_freq(y, 44100) - 500) < 5


# --- queue ----------------------------------------------------------------------------------


async def test_drop_oldest_queue_keeps_newest_and_counts() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3, "t")
    for i in range(5):
        q.put_nowait(i)
    assert q.dropped == 2
    assert [await asyncio.wait_for(q.get(), 1) for _ in range(3)] == [2, 3, 4]
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put_nowait(9)
    assert await asyncio.wait_for(getter, 1) == 9


async def test_cancelled_getter_does_not_swallow_an_item() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.put_nowait(1)
    first.cancel()
    await asyncio.sleep(0)
    assert await asyncio.wait_for(second, 1) == 1


# --- echo gate ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_half_duplex_gate_closed_while_playing_and_for_the_tail() -> None:
    clock, playing = FakeClock(), [False]
    gate = EchoGate(EchoMode.HALF_DUPLEX, 300, lambda: playing[0], clock=clock)
    block = AudioBlock(b"\0\0", 0)
    assert gate(block)
    playing[0] = True
    assert not gate(block)
    clock.now += 5
    assert not gate(block)
    playing[0] = False
    clock.now += 0.299
    assert not gate(block)
    clock.now += 0.002
    assert gate(block)
    assert gate.blocked == 3


def test_full_duplex_gate_always_open() -> None:
    gate = EchoGate(EchoMode.FULL_DUPLEX, 300, lambda: True, clock=FakeClock())
    assert gate(AudioBlock(b"\0\0", 0))


# --- playback buffer ------------------------------------------------------------------------


def test_playback_buffer_reads_across_chunks_with_gain() -> None:
    buf = PlaybackBuffer()
    buf.push(np.full(5, 0.5, np.float32))
    buf.push(np.full(3, 0.25, np.float32))
    out = np.zeros(6, np.float32)
    assert buf.read_into(out, 0.5) == 6
    assert out.tolist() == [0.25] * 5 + [0.125]
    out[:] = 9
    assert buf.read_into(out, 1.0) == 2
    assert out[:2].tolist() == [0.25, 0.25]
    assert buf.is_empty()


def test_playback_buffer_says_where_the_last_reply_sample_of_a_read_fell() -> None:
    """The echo gate's long tail counts from a reply's last sample, its short one from an
    earcon's: the callback learns which from the buffer."""
    buf = PlaybackBuffer()
    buf.push(np.ones(4, np.float32))  # the end of a reply
    buf.push(np.ones(3, np.float32), earcon=True)  # then the end chime
    out = np.zeros(5, np.float32)
    assert buf.read_into(out, 1.0) == 5 and buf.reply_end == 4
    assert buf.read_into(out, 1.0) == 2 and buf.reply_end == 0
    buf.push(np.ones(2, np.float32), earcon=True)
    buf.push(np.ones(2, np.float32))
    assert buf.read_into(out, 1.0) == 4 and buf.reply_end == 4


def test_playback_flush_drops_the_chunk_in_progress() -> None:
    buf = PlaybackBuffer()
    buf.push(np.ones(1000, np.float32))
    buf.push(np.ones(1000, np.float32))
    out = np.zeros(100, np.float32)
    buf.read_into(out, 1.0)
    assert buf.flush() == 1900
    assert buf.read_into(out, 1.0) == 0
    assert buf.is_empty()


# --- volume ---------------------------------------------------------------------------------


def test_volume_persists_atomically(tmp_path: os.PathLike[str]) -> None:
    store = VolumeStore(tmp_path, default=70)
    assert store.load() == 70
    store.save(130)
    assert VolumeStore(tmp_path, default=70).load() == 100
    store.save(25)
    assert VolumeStore(tmp_path, default=70).load() == 25
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["volume"]  # no temp left
    store.path.write_text("loud")
    assert store.load() == 70
    assert gain(0) == 0.0
    assert gain(100) == 1.0
    assert 0 < gain(50) < 0.5


# --- earcons --------------------------------------------------------------------------------


def test_earcons_are_short_distinct_and_error_sounds_differ() -> None:
    kinds: list[Earcon | ErrorKind] = [*Earcon, *ErrorKind]
    sounds = {k: earcons.render(k) for k in kinds}
    for k, s in sounds.items():
        assert 0.1 < len(s) / earcons.RATE < 1.0, k
        assert np.max(np.abs(s)) > 5000, k
    # Every pair differs clearly in envelope (rhythm) or spectrum.
    for i, a in enumerate(kinds):
        for b in kinds[i + 1 :]:
            assert _distance(sounds[a], sounds[b]) > 0.2, (a, b)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of coarse spectrograms (20 ms frames x 100 Hz bands, padded)."""

    def spectrogram(x: np.ndarray) -> np.ndarray:
        n = 480  # 20 ms at 24 kHz
        frames = x[: len(x) // n * n].astype(float).reshape(-1, n) * np.hanning(n)
        mag = np.abs(np.fft.rfft(frames, axis=1))[:, :240].reshape(-1, 60, 4).sum(axis=2)
        return np.pad(mag, ((0, 60 - len(mag)), (0, 0))).ravel()

    u, v = spectrogram(a), spectrogram(b)
    return 1 - float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
