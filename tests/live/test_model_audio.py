"""The model's audio as the server labels it (device/live/model_audio.py, device/live/turns.py):
the SDK's own types, no server."""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any, cast

import numpy as np
import pytest
from google.genai import types

from device.events import MODEL_RATE, ModelAudio, ServerInterrupted, TurnCompleted
from device.live.link import Link
from device.live.model_audio import ModelAudioIn, parse_rate
from device.live.turns import TurnLog

pytestmark = pytest.mark.unit


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def peak_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_the_label_s_rate_is_read() -> None:
    assert parse_rate("audio/pcm;rate=24000") == 24000
    assert parse_rate("audio/pcm; rate=16000") == 16000
    assert parse_rate("audio/pcm") == parse_rate(None) == MODEL_RATE
    assert parse_rate("audio/ogg") is None
    assert parse_rate("audio/L16;rate=24000") is None  # big-endian
    assert parse_rate("audio/pcm;rate=fast") is None
    assert parse_rate("audio/pcm;rate=0") is None


def test_24_khz_passes_unchanged_and_an_odd_split_loses_no_sample() -> None:
    pcm = tone(MODEL_RATE, 0.5)
    audio = ModelAudioIn()
    out = b""
    cuts = [0, 481, 962, 1443, 4001, len(pcm)]  # odd lengths: chunks that end mid-sample
    for a, b in itertools.pairwise(cuts):
        out += audio.take("audio/pcm;rate=24000", pcm[a:b])
    assert out == pcm  # before, each odd chunk dropped a byte and shifted every later sample
    assert audio.end_turn() == b""


def test_another_rate_is_resampled_to_24_khz_and_its_tail_ends_the_turn() -> None:
    pcm = tone(16000, 1.0)
    audio = ModelAudioIn()
    out = b"".join(
        audio.take("audio/pcm;rate=16000", pcm[i : i + 1280]) for i in range(0, len(pcm), 1280)
    )
    out += audio.end_turn()
    assert abs(len(out) // 2 - MODEL_RATE) <= 24  # 1 s at 24 kHz, within a millisecond
    assert peak_hz(out, MODEL_RATE) == pytest.approx(440, abs=2)  # not played 1.5x fast


def test_unplayable_audio_is_dropped_with_one_error_per_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audio = ModelAudioIn()
    with caplog.at_level(logging.ERROR):
        assert audio.take("audio/ogg", b"OggS" * 100) == b""
        assert audio.take("audio/ogg", b"OggS" * 100) == b""
    assert audio.dropped_bytes == 800
    assert [r.getMessage() for r in caplog.records] == [
        "the server sent audio as 'audio/ogg', which this speaker cannot play: dropped"
    ]


def content(**kw: Any) -> types.LiveServerContent:
    return types.LiveServerContent(**kw)


def audio_turn(mime: str, pcm: bytes) -> types.LiveServerContent:
    blob = types.Blob(mime_type=mime, data=pcm)
    return content(model_turn=types.Content(role="model", parts=[types.Part(inline_data=blob)]))


def test_a_turn_at_16_khz_reaches_the_speaker_at_24_khz_and_an_interruption_drops_the_rest() -> (
    None
):
    link = Link(cast(Any, None), contextlib.AsyncExitStack())
    turns = TurnLog()
    pcm = tone(16000, 0.5)
    events = [
        ev
        for i in range(0, len(pcm), 640)
        for ev in turns.content(link, audio_turn("audio/pcm;rate=16000", pcm[i : i + 640]), None)
    ]
    events += turns.content(link, content(turn_complete=True), None)
    played = b"".join(ev.pcm for ev in events if isinstance(ev, ModelAudio))
    assert isinstance(events[-1], TurnCompleted)
    assert abs(len(played) // 2 - MODEL_RATE // 2) <= 24
    assert link.bytes_down == len(played)
    # The next answer is interrupted halfway: what the resampler held of it is not played later.
    turns.content(link, audio_turn("audio/pcm;rate=16000", pcm), None)
    events = turns.content(link, content(interrupted=True), None)
    assert [type(ev) for ev in events] == [ServerInterrupted]
    events = turns.content(link, audio_turn("audio/pcm;rate=16000", tone(16000, 0.1)), None)
    events += turns.content(link, content(turn_complete=True), None)
    third = b"".join(ev.pcm for ev in events if isinstance(ev, ModelAudio))
    assert abs(len(third) // 2 - MODEL_RATE // 10) <= 24  # only its own 0.1 s
