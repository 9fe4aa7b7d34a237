"""The echo canceller's bookkeeping without a sound card: clocks, the reference timeline, the
gate in aec mode, and the canceller itself on a simulated room (numpy, no PortAudio)."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.aec import (
    FRAME,
    GUARD_FLOOR_RMS,
    GUARD_LIKENESS,
    GUARD_WINDOW,
    LEARN_FRAMES,
    REANCHOR_S,
    EchoCanceller,
    EchoReference,
    SampleClock,
    echo_likeness,
    residual_echo,
)
from device.audio.echo import EchoGate
from device.config import AudioConfig, ConfigError, EchoMode, parse_config
from device.events import MIC_RATE, AudioBlock
from device.simhw.room import room_response
from tests.conftest import SpeechFactory

pytestmark = pytest.mark.unit


def test_sample_clock_counts_through_jitter_and_reanchors_on_a_jump() -> None:
    clock = SampleClock(16000)
    clock.report(0, 100.0)
    clock.report(1600, 100.1 + 0.004)  # 4 ms of jitter: counting wins
    assert clock.time_of(3200) == pytest.approx(100.2)
    assert clock.reanchors == 0
    clock.report(4800, 100.3 + REANCHOR_S + 0.005)  # a gap: the reported time wins
    assert clock.reanchors == 1
    assert clock.time_of(4800) == pytest.approx(100.3 + REANCHOR_S + 0.005)


def test_the_reference_lands_where_it_was_heard_and_silence_elsewhere() -> None:
    ref = EchoReference()
    rate = 48000
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    t0 = 50.0
    for i in range(0, rate, 480):  # 10 ms callbacks, contiguous
        ref.put(t0 + i / rate, x[i : i + 480], rate)
    ref.drain()
    assert ref.restarts == 1
    tick = round(t0 * MIC_RATE)
    before = ref.window(tick - 1600, 1600)
    assert not before.any()
    played = ref.window(tick + 1600, 8000).astype(np.float64)
    assert np.sqrt(np.mean(played**2)) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)
    spec = np.abs(np.fft.rfft(played))
    assert np.argmax(spec) * MIC_RATE / len(played) == pytest.approx(440, abs=3)
    # The stream stopped and started again 1 s later: re-anchored there, nothing in between.
    ref.put(t0 + 2.0, x[:480], rate)
    ref.drain()
    assert ref.restarts == 2
    assert not ref.window(tick + MIC_RATE + 1600, 1600).any()


def test_the_reference_follows_a_lasting_change_of_the_output_latency() -> None:
    """Jitter in the reported DAC times is ignored; a lasting 5 ms step (the output re-buffered)
    moves the timeline after a few blocks, without a restart."""
    ref = EchoReference()
    rate = MIC_RATE
    t0, step = 10.0, 0.005
    rng = np.random.default_rng(1)
    for k in range(300):  # 3 s of 10 ms blocks, the last 2 s reported 5 ms later
        jitter = float(rng.uniform(-0.0005, 0.0005))
        late = step if k >= 100 else 0.0
        block = np.full(FRAME, (k + 1) / 1000, np.float32)  # each block its own level
        ref.put(t0 + k * 0.01 + late + jitter, block, rate)
    ref.drain()
    assert ref.restarts == 1 and ref.shifts == 1
    # Block 250 is heard 5 ms after its count: the timeline has it there.
    tick = round((t0 + 2.5 + step) * MIC_RATE)
    level = ref.window(tick + 10, FRAME - 20).astype(np.float64) / 32767
    assert level == pytest.approx(np.full(FRAME - 20, 0.251), abs=0.002)


def test_the_gate_in_aec_mode_is_half_duplex_until_the_canceller_has_learned() -> None:
    learned = False
    playing = True
    gate = EchoGate(EchoMode.AEC, 300, lambda: playing, clock=lambda: 0.0, learned=lambda: learned)
    block = AudioBlock(b"\0" * 640, 0)
    assert not gate.talks_over() and not gate(block)
    learned = True
    assert gate.talks_over() and gate(block)
    assert not EchoGate(EchoMode.HALF_DUPLEX, 300, lambda: playing).talks_over()
    assert EchoGate(EchoMode.FULL_DUPLEX, 300, lambda: playing).talks_over()


def test_the_gate_closes_for_a_sound_it_never_saw_by_when_the_block_was_captured() -> None:
    """The wake chime plays while connecting, before the upload (and its gate) exists; its echo
    arrives after the chime: the gate still withholds it, counting the tail from the chime's
    last sample at the DAC to when each block was captured, not to when it reached the loop."""
    now = [100.0]
    heard = 99.9  # the chime's last sample reached the DAC 100 ms ago
    gate = EchoGate(
        EchoMode.HALF_DUPLEX,
        300,
        lambda: False,
        clock=lambda: now[0],
        captured_at=lambda b: b.start / MIC_RATE,
        heard_until=lambda: heard,
    )
    echo = AudioBlock(b"\0" * 640, round(100.0 * MIC_RATE))  # captured now: 100 ms after
    assert not gate(echo)
    now[0] = 100.5  # reaches the loop late: still captured within the tail
    assert not gate(echo)
    later = AudioBlock(b"\0" * 640, round(100.25 * MIC_RATE))  # 350 ms after the chime
    assert gate(later)
    assert gate.blocked == 2


def test_aec_needs_whole_10_ms_blocks() -> None:
    with pytest.raises(ValueError, match="steps of 10 ms"):
        AudioConfig(echo_mode=EchoMode.AEC, block_ms=25)
    with pytest.raises(ConfigError, match="steps of 10 ms"):
        parse_config({"audio": {"echo_mode": "aec", "block_ms": 25}})


def test_the_canceller_removes_a_simulated_room_s_echo_and_keeps_the_talker() -> None:
    """Far end and microphone fed on one timeline (as the audio engine's clocks deliver them):
    the echo falls by more than 25 dB once learned; a talker over it stays."""
    rng = np.random.default_rng(0)
    n = MIC_RATE * 6
    far = rng.standard_normal(n) * 3000 * np.repeat(rng.random(n // 1600) > 0.3, 1600)
    echo = np.convolve(far, room_response(0.04, 10, 0.2, rng))[:n]
    talker = np.zeros(n)
    talker[4 * MIC_RATE : 5 * MIC_RATE] = 2000 * np.sin(
        2 * np.pi * 300 * np.arange(MIC_RATE) / MIC_RATE
    )
    near = np.clip(echo + talker, -32768, 32767).astype(np.int16)
    ref = EchoReference()
    canceller = EchoCanceller(ref)
    t0 = 1000.0
    played = (far / 32767).astype(np.float32)
    ahead = 5 * FRAME  # the speaker hands its blocks over ~50 ms before they are heard
    ref.put(t0, played[:ahead], MIC_RATE)
    out = []
    for i in range(0, n, 2 * FRAME):
        for j in range(i + ahead, min(i + ahead + 2 * FRAME, n), FRAME):
            ref.put(t0 + j / MIC_RATE, played[j : j + FRAME], MIC_RATE)
        block = AudioBlock(near[i : i + 2 * FRAME].tobytes(), i)
        out.append(np.frombuffer(canceller.process(block, t0 + i / MIC_RATE).pcm, np.int16))
    y = np.concatenate(out).astype(np.float64)
    assert canceller.learned() and canceller.stats.echo_frames >= LEARN_FRAMES

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x**2) + 1e-3))

    late = slice(2 * MIC_RATE, 4 * MIC_RATE)
    assert db(echo[late]) - db(y[late]) > 25
    talk = slice(4 * MIC_RATE + 1600, 5 * MIC_RATE)
    assert db(y[talk]) > db(talker[talk]) - 6


def test_echo_likeness_tells_the_speaker_s_sound_from_a_person_talking_over_it(
    speech: SpeechFactory,
) -> None:
    """The residual-echo guard's measure: the answer through a room (delay, -10 dB, reverb) is
    like the answer; a person's words over it are not, at any alignment."""
    rng = np.random.default_rng(1)
    answer = speech("The capital of France is Paris, a city on the Seine with many museums.")
    user = speech("wait, stop. what is the time in tokyo?", voice="en-gb").astype(np.float64)
    echo = np.convolve(answer.astype(np.float64), room_response(0.04, 10, 0.2, rng))
    lag, ahead = 2400, 2 * FRAME
    echoes, voices = [], []
    for end in range(lag + GUARD_WINDOW, min(len(answer), len(user)) - ahead, 1600):
        far = answer[end - GUARD_WINDOW - lag : end + ahead]
        heard = echo[end - GUARD_WINDOW : end]
        said = user[end - GUARD_WINDOW : end]
        if np.sqrt(np.mean(heard**2)) > 100:
            echoes.append(echo_likeness(heard.astype(np.int16), far))
        if np.sqrt(np.mean(said**2)) > 400:  # the person is louder than the echo (-10 dB)
            voices.append(echo_likeness((said + heard).astype(np.int16), far))
    assert len(echoes) >= 10 and len(voices) >= 10
    assert np.median(echoes) >= 0.9 and min(echoes) >= GUARD_LIKENESS, echoes
    assert np.median(voices) <= 0.4 and max(voices) < GUARD_LIKENESS, voices
    silent = np.zeros(GUARD_WINDOW + lag + ahead, np.int16)
    assert echo_likeness(echo[:GUARD_WINDOW].astype(np.int16), silent) == 0.0


def test_the_guard_takes_only_a_loud_block_the_canceller_missed_while_the_speaker_was_heard(
    speech: SpeechFactory,
) -> None:
    """The guard's verdict on constructed blocks: the echo passed through whole (a miss) is
    taken; the same with the canceller's work done, or quiet, or a person louder than the
    speaker's sound, or the speaker silent, is not."""
    rng = np.random.default_rng(3)
    answer = speech("The capital of France is Paris, a city on the Seine with many museums.")
    user = speech("wait, stop. what is the time in tokyo?", voice="en-gb").astype(np.float64)
    echo = np.convolve(answer.astype(np.float64), room_response(0.04, 10, 0.2, rng))
    lag, ahead, block = 2400, 2 * FRAME, 2 * FRAME
    verdicts: dict[str, list[bool]] = {k: [] for k in ("miss", "done", "quiet", "user", "mute")}
    for end in range(lag + GUARD_WINDOW, min(len(answer), len(user)) - ahead, 1600):
        far = answer[end - GUARD_WINDOW - lag : end + ahead]
        heard = echo[end - GUARD_WINDOW : end]
        said = user[end - GUARD_WINDOW : end] * 3  # a person close to the microphone
        if np.sqrt(np.mean(heard[-block:] ** 2)) < 2 * GUARD_FLOOR_RMS:
            continue
        h16 = heard.astype(np.int16)
        verdicts["miss"].append(residual_echo(h16, h16[-block:], h16[-block:], lambda f=far: f))
        done = (heard[-block:] * 0.1).astype(np.int16)  # 20 dB removed
        verdicts["done"].append(residual_echo(h16, h16[-block:], done, lambda f=far: f))
        quiet = np.clip(h16[-block:], -100, 100)
        verdicts["quiet"].append(residual_echo(h16, h16[-block:], quiet, lambda f=far: f))
        silent = np.zeros_like(far)
        verdicts["mute"].append(residual_echo(h16, h16[-block:], h16[-block:], lambda f=silent: f))
        if np.sqrt(np.mean(said[-block:] ** 2)) > 4 * np.sqrt(np.mean(heard[-block:] ** 2)):
            mix = (said + heard).astype(np.int16)
            verdicts["user"].append(residual_echo(mix, mix[-block:], mix[-block:], lambda f=far: f))
    assert all(len(v) >= 5 for v in verdicts.values()), {k: len(v) for k, v in verdicts.items()}
    assert sum(verdicts["miss"]) >= 0.8 * len(verdicts["miss"]), verdicts["miss"]
    assert not any(verdicts["done"] + verdicts["quiet"] + verdicts["user"] + verdicts["mute"])


def test_the_guard_keeps_a_talker_quieter_than_the_speaker_while_the_canceller_works() -> None:
    """On a real speaker the answer is often louder at the microphone than the person talking
    over it: the microphone's signal is then mostly the speaker's sound, but the canceller takes
    that out and what is left is the talker, whose blocks go on."""
    rng = np.random.default_rng(2)
    n = MIC_RATE * 6
    far = rng.standard_normal(n) * 3000
    echo = np.convolve(far, room_response(0.02, 0, 0.1, rng))[:n]  # as loud as it was played
    talker = np.zeros(n)
    talk = slice(4 * MIC_RATE, 5 * MIC_RATE)
    talker[talk] = rng.standard_normal(MIC_RATE) * 1000  # 10 dB below the echo
    near = np.clip(echo + talker, -32768, 32767).astype(np.int16)
    ref = EchoReference()
    canceller = EchoCanceller(ref)
    gate = EchoGate(
        EchoMode.AEC, 300, lambda: True, learned=lambda: True, residual=canceller.residual
    )
    t0, played, ahead = 1000.0, (far / 32767).astype(np.float32), 5 * FRAME
    ref.put(t0, played[:ahead], MIC_RATE)
    passed = []
    for i in range(0, n, 2 * FRAME):
        for j in range(i + ahead, min(i + ahead + 2 * FRAME, n), FRAME):
            ref.put(t0 + j / MIC_RATE, played[j : j + FRAME], MIC_RATE)
        out = canceller.process(AudioBlock(near[i : i + 2 * FRAME].tobytes(), i), t0 + i / MIC_RATE)
        if talk.start <= i < talk.stop:
            assert echo_likeness(
                near[i + 2 * FRAME - GUARD_WINDOW : i + 2 * FRAME],
                ref.window(round((t0 + i / MIC_RATE - 0.15) * MIC_RATE) + 2 * FRAME - GUARD_WINDOW, 2400 + GUARD_WINDOW + 2 * FRAME),
            ) >= GUARD_LIKENESS  # fmt: skip
            passed.append(gate(out))
    assert len(passed) == 50 and all(passed), passed
