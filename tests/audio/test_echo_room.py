"""The room measurement doctor makes and `echo_mode = "auto"` reads (no sound card)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.audio.echo_room import FILE, effective_mode, load, measure, probe_signal, save
from device.config import EchoMode
from device.events import MIC_RATE
from device.simhw.room import room_response

pytestmark = pytest.mark.unit


def recording_of(signal: np.ndarray, *, delay_s: float, attenuation_db: float) -> np.ndarray:
    """What a microphone records: 1 s of a quiet room, then the signal's echo through a room."""
    rng = np.random.default_rng(2)
    h = room_response(delay_s, attenuation_db, 0.2, rng)
    echo = np.convolve(signal.astype(np.float64), h)
    rec = np.concatenate([np.zeros(MIC_RATE), echo, np.zeros(MIC_RATE)])
    rec += rng.normal(0, 10, len(rec))
    return np.clip(rec, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(("delay_s", "attenuation_db"), [(0.045, 12), (0.1, 6), (0.02, 20)])
def test_a_room_is_measured_and_cancelled_and_auto_picks_aec(
    tmp_path: Path, delay_s: float, attenuation_db: float
) -> None:
    signal = probe_signal()
    assert -21 < 10 * np.log10(np.mean(signal.astype(float) ** 2) / 32767**2) < -19
    assert 5 * MIC_RATE < len(signal) < 7 * MIC_RATE
    rec = recording_of(signal, delay_s=delay_s, attenuation_db=attenuation_db)
    m = measure(signal, rec, MIC_RATE)
    assert m.heard and m.delay_ms is not None and m.erl_db is not None and m.erle_db is not None
    assert m.delay_ms == pytest.approx(delay_s * 1000, abs=3)
    assert m.erl_db == pytest.approx(attenuation_db, abs=3)
    assert m.erle_db >= 25 and m.recommended is EchoMode.AEC
    assert effective_mode(EchoMode.AUTO, tmp_path) is EchoMode.HALF_DUPLEX  # nothing measured
    save(tmp_path, m)
    assert load(tmp_path) == m
    assert effective_mode(EchoMode.AUTO, tmp_path) is EchoMode.AEC
    assert effective_mode(EchoMode.FULL_DUPLEX, tmp_path) is EchoMode.FULL_DUPLEX


def test_no_echo_means_full_duplex_and_a_broken_file_half_duplex(tmp_path: Path) -> None:
    signal = probe_signal()
    quiet = np.random.default_rng(0).normal(0, 30, 9 * MIC_RATE).astype(np.int16)
    m = measure(signal, quiet, MIC_RATE)
    assert not m.heard and m.recommended is EchoMode.FULL_DUPLEX
    save(tmp_path, m)
    assert effective_mode(EchoMode.AUTO, tmp_path) is EchoMode.FULL_DUPLEX
    (tmp_path / FILE).write_text(json.dumps({"heard": True}))
    assert load(tmp_path) is None
    assert effective_mode(EchoMode.AUTO, tmp_path) is EchoMode.HALF_DUPLEX


def test_a_recording_too_short_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shorter than the signal"):
        measure(probe_signal(), np.zeros(MIC_RATE, np.int16))
