"""The test rig itself: real PortAudio through the virtual sound card, both directions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.simhw.pulse import VirtualSoundCard, read_wav

pytestmark = pytest.mark.integration


def best_correlation(ref: npt.NDArray[np.int16], rec: npt.NDArray[np.int16]) -> float:
    """Peak normalised cross-correlation of ref against any alignment inside rec."""
    a = ref.astype(np.float64)
    b = rec.astype(np.float64)
    if len(b) < len(a):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: len(b) - len(a) + 1]
    lag = int(np.argmax(xc))
    seg = b[lag : lag + len(a)]
    return float(np.dot(a, seg) / (np.linalg.norm(a) * np.linalg.norm(seg) + 1e-9))


def test_plays_through_sounddevice_into_virtual_speaker(sound_card: VirtualSoundCard) -> None:
    import sounddevice as sd

    rate = 48000
    t = np.arange(int(rate * 1.0)) / rate
    # A chirp: unambiguous alignment, unlike a pure tone.
    signal = (0.4 * 32767 * np.sin(2 * np.pi * (300 + 1200 * t) * t)).astype(np.int16)
    with sound_card.record_speaker(rate) as rec:
        rec.wait_until_flowing()
        sd.play(signal, rate, device="default", blocking=True)
        time.sleep(0.5)
    assert best_correlation(signal, rec.samples) > 0.9


def test_records_mic_feed_through_sounddevice(
    sound_card: VirtualSoundCard, speech_wav: Callable[..., Path]
) -> None:
    import sounddevice as sd

    wav = speech_wav("testing the microphone, one two three")
    ref, rate = read_wav(wav)
    assert rate == 16000
    chunks: list[npt.NDArray[np.int16]] = []
    with sd.InputStream(
        samplerate=16000,
        channels=1,
        dtype="int16",
        device="default",
        callback=lambda d, *_: chunks.append(d[:, 0].copy()),
    ):
        # A new PulseAudio client can take seconds before audio flows: wait for real data, not
        # a fixed time; then lead with silence (the first audio into an idle null sink is
        # partly lost at its monitor, test-rig.md).
        deadline = time.monotonic() + 15
        while sum(len(c) for c in chunks) < 16000 // 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        player = sound_card.feed_mic(
            np.concatenate([np.zeros(int(0.7 * rate), np.int16), ref]), rate
        )
        assert player.wait(30) == 0
        time.sleep(0.5)
    rec = np.concatenate(chunks)
    assert best_correlation(ref, rec) > 0.9
