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
    assert m.wander_ms is not None and m.wander_ms <= 2  # a fixed path
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


def test_an_echo_whose_delay_wanders_is_still_heard_and_the_wander_measured() -> None:
    """A path whose delay grows by 60 ms while the probe plays (PulseAudio's loopback on a busy
    machine does this, test_doctor.py): a single match over the whole probe correlated 0.16 here
    and called it silence; followed piece by piece it is heard, and the wander is reported."""
    signal = probe_signal()
    rng = np.random.default_rng(3)
    t = np.arange(len(signal) + MIC_RATE, dtype=np.float64)
    delay = MIC_RATE * (0.2 + 0.06 * np.clip(t / len(signal), 0, 1))
    echo = 0.5 * np.interp(t - delay, np.arange(len(signal)), signal.astype(np.float64), 0, 0)
    rec = np.concatenate([np.zeros(MIC_RATE), echo, np.zeros(MIC_RATE)])
    rec = np.clip(rec + rng.normal(0, 10, len(rec)), -32768, 32767).astype(np.int16)
    m = measure(signal, rec, MIC_RATE)
    assert m.heard and m.delay_ms is not None and m.wander_ms is not None
    assert 200 < m.delay_ms < 260
    assert 35 < m.wander_ms < 75
    assert m.erl_db == pytest.approx(6, abs=2)


def test_other_speech_in_the_room_is_not_the_echo() -> None:
    """Speech with the probe's own spectrum but not the probe (its pieces reversed and shuffled):
    some pieces match by chance, at scattered delays; most do not."""
    signal = probe_signal()
    rng = np.random.default_rng(4)
    n = MIC_RATE // 4
    pieces = [signal[i : i + n][::-1] for i in range(0, len(signal) - n + 1, n)]
    other = np.concatenate([pieces[i] for i in rng.permutation(len(pieces))])
    for speech in (other, signal[::-1]):
        rec = np.concatenate(
            [np.zeros(MIC_RATE), speech.astype(np.float64), np.zeros(2 * MIC_RATE)]
        )
        rec = np.clip(rec + rng.normal(0, 10, len(rec)), -32768, 32767).astype(np.int16)
        m = measure(signal, rec, MIC_RATE)
        assert not m.heard and m.recommended is EchoMode.FULL_DUPLEX


def test_a_measurement_saved_before_the_wander_was_kept_still_loads(tmp_path: Path) -> None:
    m = measure(
        probe_signal(), recording_of(probe_signal(), delay_s=0.05, attenuation_db=10), MIC_RATE
    )
    doc = json.loads(json.dumps({**m.__dict__, "recommended": m.recommended.value}))
    del doc["wander_ms"]
    (tmp_path / FILE).write_text(json.dumps(doc))
    old = load(tmp_path)
    assert old is not None and old.wander_ms is None and old.recommended is m.recommended


def test_a_recording_too_short_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shorter than the signal"):
        measure(probe_signal(), np.zeros(MIC_RATE, np.int16))
