"""PreRoll: ring buffer of AudioBlocks, joined to live audio without gap or duplicate."""

from __future__ import annotations

import numpy as np
import pytest

from device.events import AudioBlock
from device.wakeword.preroll import PreRoll

pytestmark = pytest.mark.unit


def blocks(n: int, size: int = 320, start: int = 0) -> list[AudioBlock]:
    """Blocks whose samples are their own sample index (mod 2**15), so joins can be checked."""
    out = []
    for i in range(n):
        s = start + i * size
        out.append(AudioBlock((np.arange(s, s + size) % 32768).astype(np.int16).tobytes(), s))
    return out


def samples(bs: list[AudioBlock]) -> np.ndarray:
    return np.frombuffer(b"".join(b.pcm for b in bs), np.int16)


def test_keeps_only_the_last_seconds() -> None:
    pre = PreRoll(0.1)  # 1600 samples = 5 blocks of 320
    for b in blocks(20):
        pre.add(b)
    assert pre.latest_end == 20 * 320
    assert pre.earliest == 15 * 320


def test_take_from_trims_the_first_block_and_joins_live_audio() -> None:
    pre = PreRoll(1.0)
    all_blocks = blocks(30)
    for b in all_blocks[:20]:
        pre.add(b)
    got = pre.take_from(1000)
    assert got[0].start == 1000
    assert pre.latest_end is not None
    live = [b for b in all_blocks if b.start >= pre.latest_end]
    joined = samples(got + live)
    assert np.array_equal(joined, np.arange(1000, 30 * 320) % 32768)
    for a, b in zip(got + live, (got + live)[1:], strict=False):
        assert a.end == b.start


def test_take_from_older_than_held_returns_everything() -> None:
    pre = PreRoll(0.05)
    for b in blocks(10):
        pre.add(b)
    got = pre.take_from(0)
    assert got[0].start == pre.earliest
    assert got[-1].end == 3200


def test_take_from_the_future_is_empty_and_clear_forgets() -> None:
    pre = PreRoll(1.0)
    for b in blocks(3):
        pre.add(b)
    assert pre.take_from(960) == []
    pre.clear()
    assert pre.latest_end is None
    assert pre.take_from(0) == []


def test_rejects_nonpositive_length() -> None:
    with pytest.raises(ValueError):
        PreRoll(0)
