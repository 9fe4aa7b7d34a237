"""The echo canceller's bookkeeping without a sound card: clocks, the reference timeline, the
gate in aec mode, and the canceller itself on a simulated room (numpy, no PortAudio)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.aec import (
    FRAME,
    GAP_S,
    LEARN_FRAMES,
    LEARN_STEADY,
    LOCK_MAX_RATE,
    LOCK_RETARGET_AFTER,
    OUTLIERS,
    REANCHOR_S,
    EchoCanceller,
    EchoLock,
    EchoReference,
    SampleClock,
)
from device.audio.echo import EchoGate
from device.config import AudioConfig, ConfigError, EchoMode, parse_config
from device.events import MIC_RATE, AudioBlock
from device.simhw.room import room_response

pytestmark = pytest.mark.unit


def test_sample_clock_counts_through_jitter_and_reanchors_on_a_jump() -> None:
    clock = SampleClock(16000)
    clock.report(0, 100.0)
    clock.report(1600, 100.1 + 0.004)  # 4 ms of jitter: counting wins (it moves 2 % of it)
    assert clock.time_of(3200) == pytest.approx(100.2, abs=0.0002)
    assert clock.reanchors == 0
    late = REANCHOR_S + 0.005
    clock.report(4800, 100.3 + late)  # one report far off: jitter, counting goes on
    assert clock.reanchors == 0
    assert clock.time_of(4800) == pytest.approx(100.3, abs=0.0002)
    for k in range(1, OUTLIERS):  # ... but off by as much OUTLIERS times in a row: moved
        clock.report(4800 + 1600 * k, 100.3 + 0.1 * k + late)
    assert clock.reanchors == 1
    assert clock.time_of(8000) == pytest.approx(100.5 + late)
    clock.report(9600, 100.6 + late + GAP_S + 0.01)  # a gap: the reported time wins at once
    assert clock.reanchors == 2
    assert clock.time_of(9600) == pytest.approx(100.6 + late + GAP_S + 0.01)


@pytest.mark.parametrize("ppm", [0, 430, -300])
def test_sample_clock_follows_a_device_clock_that_runs_fast_or_slow(ppm: int) -> None:
    """The rig's 44.1 kHz microphone runs 430 ppm off the monotonic clock: counting alone drifts
    20 ms in 47 s and then jumps back (a re-anchor), which the canceller has to find again."""
    rng = np.random.default_rng(abs(ppm))
    clock = SampleClock(16000)
    period = (1 + ppm * 1e-6) / 16000
    worst = 0.0
    for count in range(0, 16000 * 150, 1280):  # 80 ms reads for 150 s, reports jitter ~2 ms
        true = 100.0 + count * period
        clock.report(count, true + rng.normal(0, 0.002))
        if count > 16000 * 20:  # settled
            worst = max(worst, abs(clock.time_of(count + 640) - (true + 640 * period)))
    assert clock.reanchors == 0
    assert worst < 0.002


def test_sample_clock_holds_still_through_jitter_once_settled() -> None:
    """What the canceller needs is a timeline that holds still: one that wanders with the
    reports' jitter moves the echo against its reference within an answer, and AEC3 lets it
    through while it finds it again (on the rig: 2.4 ms within a 3 s answer, echo at -42 to -35
    dBFS in the upload for 100-200 ms). 20 ms reports with 2 ms of jitter and, one in 20, a report
    5-19 ms late (the rig's)."""
    rng = np.random.default_rng(7)
    clock = SampleClock(16000)
    period = (1 + 430e-6) / 16000
    errors: list[float] = []
    for count in range(0, 16000 * 180, 320):
        true = 100.0 + count * period
        late = rng.uniform(0.005, 0.019) if rng.random() < 0.05 else 0.0
        clock.report(count, true + rng.normal(0, 0.002) + late)
        errors.append(clock.time_of(count) - true)
    settled = np.array(errors[60 * 50 :])  # after the first minute
    three_s = 3 * 50
    moves = np.abs(settled[three_s:] - settled[:-three_s])
    assert clock.reanchors == 0
    assert np.abs(settled).max() < 0.0015
    assert moves.max() < 0.0005  # a loop as quick as the first seconds' moved 1.9 ms


def test_a_flush_takes_back_the_reference_that_was_never_heard() -> None:
    """At a barge-in the speaker drops what the device holds: the reference must not say it was
    played (the canceller would learn a room without echo while the user talks)."""
    ref = EchoReference()
    rate = 48000
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    t0 = 50.0
    for i in range(0, rate, 480):  # 1 s handed over ahead of time, as the callback does
        ref.put(t0 + i / rate, x[i : i + 480], rate)
    ref.cut(t0 + 0.4)  # ... and flushed 0.4 s in
    for i in range(0, 4800, 480):  # the next sound (0.1 s), on a timeline started afresh
        ref.put(t0 + 0.45 + i / rate, x[i : i + 480], rate)
    ref.drain()
    tick = round(t0 * MIC_RATE)

    def rms(start: int, n: int) -> float:
        return float(np.sqrt(np.mean(ref.window(tick + start, n).astype(np.float64) ** 2)))

    assert rms(800, 5000) > 10000  # played until the flush
    assert rms(6400, 800) == 0  # flushed: nothing was heard there
    assert rms(7400, 800) > 10000  # the next sound
    assert rms(8800, 8000) == 0
    assert ref.restarts == 2


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


def block_ticks(
    ref: EchoReference, blocks: int, late: Callable[[int], float], rate: int
) -> list[int]:
    """Where each of `blocks` 10 ms output blocks starts on the reference's timeline when block
    k is reported heard `late(k)` s after its nominal time (t0 = 10 s)."""
    n = rate // 100
    starts = []
    for k in range(blocks):
        ref.put(10.0 + k * 0.01 + late(k), np.zeros(n, np.float32), rate)
        ref.drain()
        assert ref._write is not None  # the tick where the next block's first sample goes
        starts.append(ref._write)
    return starts


def test_the_reference_follows_an_output_clock_that_runs_slow_a_tick_at_a_time() -> None:
    """The rig's 48 kHz sink runs 170 ppm slow against the monotonic clock (2 ms in 12 s) and
    its reports jitter: the timeline keeps to when each block is heard, and moves a tick at a
    time as the echo does (it jumped 2 ms every 12 s, and AEC3 let the echo through while it
    found it again)."""
    ref = EchoReference()
    rng = np.random.default_rng(3)
    jitter = rng.normal(0, 0.0005, 3000)
    slow = 170e-6
    starts = block_ticks(ref, 3000, lambda k: k * 0.01 * slow + float(jitter[k]), MIC_RATE)
    assert ref.restarts == 1
    moves = np.diff(starts) - FRAME
    assert set(np.unique(moves)) <= {-1, 0, 1}
    heard = np.array([round((10.0 + (k + 1) * 0.01 * (1 + slow)) * MIC_RATE) for k in range(3000)])
    off = np.abs(np.array(starts) - heard)[500:]  # once the clock has its rate (5 s)
    assert off.max() <= 4  # 0.25 ms (the sawtooth reached 2 ms)


def test_the_reference_follows_a_lasting_change_of_the_output_latency() -> None:
    """Jitter in the reported DAC times is ignored; a lasting 5 ms step (the output re-buffered)
    is followed, a tick per block, without a restart."""
    ref = EchoReference()
    rng = np.random.default_rng(1)
    jitter = rng.uniform(-0.0005, 0.0005, 300)
    starts = block_ticks(ref, 300, lambda k: (0.005 if k >= 100 else 0.0) + float(jitter[k]), 16000)
    assert ref.restarts == 1
    assert set(np.unique(np.diff(starts) - FRAME)) <= {-1, 0, 1}
    heard = round((10.0 + 3.0 + 0.005) * MIC_RATE)  # the 300th block's end, 5 ms late
    assert abs(starts[-1] - heard) <= 0.0015 * MIC_RATE


@pytest.mark.parametrize("restart", ["flush", "pause"])
def test_after_a_restart_the_reference_finds_the_output_clock_again_at_once(
    restart: str,
) -> None:
    """A flush (a barge-in) or a pause (the stream stopped while idle) starts the timeline
    afresh from one report, up to several ms off with the reports' jitter (here 2 ms). The
    output's rate is known by then: the mean of the first 25 reports places the timeline, and
    then the narrow loop holds it, through the next answer (0.3-3 s after the restart: within
    0.75 ms of when each block is heard in 10 restarts). A loop quick again wandered (1.19 ms),
    and a narrow one took seconds to correct the first report (2.25 ms); AEC3's echo moves with
    the timeline, in the answers right after barge-ins."""
    slow = 170e-6
    resumed = 20.06 if restart == "flush" else 22.06

    def error(seed: int) -> float:
        ref = EchoReference()
        jitter = np.random.default_rng(seed).normal(0, 0.002, 1300)
        block_ticks(ref, 1000, lambda k: k * 0.01 * slow + float(jitter[k]), MIC_RATE)
        if restart == "flush":
            ref.cut(20.0)
        starts = block_ticks(
            ref, 300, lambda k: resumed - 10 + k * 0.01 * slow + float(jitter[1000 + k]), MIC_RATE
        )
        assert ref.restarts == 2
        heard = [round((resumed + (k + 1) * 0.01 * (1 + slow)) * MIC_RATE) for k in range(300)]
        return float(np.abs(np.array(starts) - np.array(heard))[30:].max()) / MIC_RATE

    assert max(error(seed) for seed in range(10)) < 0.001


def test_the_reference_ignores_reports_far_off_now_and_then() -> None:
    """The rig's output reports jitter ~2 ms and now and then one 20-50 ms off; the timeline
    neither restarts nor moves for them (it did, there and back, every few seconds)."""
    ref = EchoReference()
    rate = MIC_RATE
    t0 = 10.0
    rng = np.random.default_rng(2)
    for k in range(500):  # 5 s of 10 ms blocks
        off = float(rng.normal(0, 0.002))
        if k % 50 == 25:
            off = 0.035 if k % 100 == 25 else -0.025
        block = np.full(FRAME, (k + 1) / 1000, np.float32)
        ref.put(t0 + k * 0.01 + off, block, rate)
    ref.drain()
    assert ref.restarts == 1
    tick = round((t0 + 4.0) * MIC_RATE)  # block 400 where it was counted
    level = ref.window(tick + 10, FRAME - 20).astype(np.float64) / 32767
    assert level == pytest.approx(np.full(FRAME - 20, 0.401), abs=0.002)


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


def test_a_sound_still_queued_does_not_withhold_what_was_said_before_it_is_heard() -> None:
    """The wake chime waits in the queue while the output stream starts (slow on a busy
    machine): the user's question captured meanwhile carries no echo and goes up. Once the
    chime is written it is withheld until the chime's last sample at the DAC plus the tail."""
    now = [100.0]
    heard = [0.0]  # nothing played yet: the chime is only queued
    gate = EchoGate(
        EchoMode.HALF_DUPLEX,
        300,
        clock=lambda: now[0],
        captured_at=lambda b: b.start / MIC_RATE,
        heard_until=lambda: heard[0],
    )

    def block(at: float) -> AudioBlock:
        return AudioBlock(b"\0" * 640, round(at * MIC_RATE))

    for i in range(50):  # a second of the question while the chime waits
        now[0] = 100.02 + i * 0.02
        assert gate(block(now[0] - 0.02))
    now[0] = 101.02
    heard[0] = 101.36  # the callback wrote the chime: its last sample at the DAC in 340 ms
    assert not gate(block(101.0))  # asked after the write: withheld (the gate cannot tell)
    now[0] = 101.5
    assert not gate(block(101.48))  # while it plays
    now[0] = 101.7
    assert not gate(block(101.65))  # in the tail
    assert gate(block(101.67))  # 310 ms after its last sample
    assert gate.blocked == 3


def test_an_echo_gate_needs_a_clock_of_the_speaker() -> None:
    with pytest.raises(ValueError, match="is_playing or heard_until"):
        EchoGate(EchoMode.HALF_DUPLEX, 300)


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


def test_after_an_earcon_the_gate_opens_after_the_short_tail_after_a_reply_the_long_one() -> None:
    """A user who answers the wake chime at once (its last sample heard at 100.0, the question
    captured from 100.2) is not cut off by the 300 ms meant for the echo of an answer: the tail
    after an earcon is 150 ms. After an answer (or an earcon right after one) the 300 ms hold."""
    now = [100.0]
    heard, reply = [100.0], [0.0]
    gate = EchoGate(
        EchoMode.HALF_DUPLEX, 300, clock=lambda: now[0], captured_at=lambda b: b.start / MIC_RATE,
        heard_until=lambda: heard[0], reply_heard_until=lambda: reply[0], earcon_tail_ms=150,
    )  # fmt: skip

    def block(at: float) -> AudioBlock:
        now[0] = max(now[0], at + 0.02)
        return AudioBlock(b"\0" * 640, round(at * MIC_RATE))

    assert not gate(block(100.14))  # the chime's echo
    assert gate(block(100.16)) and gate(block(100.2))
    reply[0] = heard[0] = 105.0  # an answer ends ...
    heard[0] = 105.1  # ... and its end chime with it
    assert not gate(block(105.2))  # 100 ms after the chime, 200 ms after the answer
    assert not gate(block(105.26))  # past the chime's tail, within the answer's
    assert gate(block(105.31))  # 300 ms after the answer
    assert gate.blocked == 3
    # Without a reply clock the full tail follows every sound, as before.
    plain = EchoGate(
        EchoMode.HALF_DUPLEX, 300, clock=lambda: now[0], heard_until=lambda: 99.0,
        captured_at=lambda b: b.start / MIC_RATE, earcon_tail_ms=150,
    )  # fmt: skip
    assert not plain(block(99.2)) and plain(block(99.31))


def _bursts(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Noise in 100 ms bursts, 70 % of them sounding: a far end with pauses, as speech has."""
    return rng.standard_normal(n) * 3000 * np.repeat(rng.random(n // 1600 + 1) > 0.3, 1600)[:n]


def _answers_through_a_drifting_room(lock: bool, ppm: float, answers: int) -> list[float]:
    """Echo reduction (dB) per 6 s answer (1 s pauses between them) when the echo drifts `ppm`
    against its reference (two timelines that disagree), through one canceller."""
    rng = np.random.default_rng(1)
    answer, pause = 6 * MIC_RATE, MIC_RATE
    far = np.concatenate(
        [np.concatenate([_bursts(answer, rng), np.zeros(pause)]) for _ in range(answers)]
    )
    n = len(far)
    drifted = np.interp(np.arange(n) * (1 + ppm * 1e-6), np.arange(n), far)  # no aliasing: bursts
    echo = np.convolve(drifted, room_response(0.05, 10, 0.2, rng))[:n] + rng.normal(0, 3, n)
    near = np.clip(echo, -32768, 32767).astype(np.int16)
    ref = EchoReference()
    canceller = EchoCanceller(ref, lock=lock)
    t0, ahead = 1000.0, 5 * FRAME
    played = (far / 32767).astype(np.float32)
    ref.put(t0, played[:ahead], MIC_RATE)
    out = []
    for i in range(0, n - 2 * FRAME + 1, 2 * FRAME):
        for j in range(i + ahead, min(i + ahead + 2 * FRAME, n), FRAME):
            ref.put(t0 + j / MIC_RATE, played[j : j + FRAME], MIC_RATE)
        block = AudioBlock(near[i : i + 2 * FRAME].tobytes(), i)
        out.append(np.frombuffer(canceller.process(block, t0 + i / MIC_RATE).pcm, np.int16))
    y = np.concatenate(out).astype(np.float64)

    def db(x: npt.NDArray[np.float64]) -> float:
        return float(10 * np.log10(np.mean(x**2) + 1e-3))

    step = answer + pause
    return [db(echo[k * step : k * step + answer]) - db(y[k * step : k * step + answer])
            for k in range(answers)]  # fmt: skip


def test_the_echo_lock_holds_an_echo_that_drifts_against_its_reference() -> None:
    """The rig's timelines let the echo drift 0.17 ms a second against the reference; held
    still by the lock, every answer after the first is cancelled as well as a still one."""
    held = _answers_through_a_drifting_room(True, 200, 8)
    drifting = _answers_through_a_drifting_room(False, 200, 8)
    still = _answers_through_a_drifting_room(False, 0, 8)
    assert min(held[1:]) > min(still[1:]) - 3, (held, still)
    assert min(drifting[1:]) < min(held[1:]) - 6, (drifting, held)


def test_the_echo_lock_follows_the_drift_and_takes_a_moved_room_as_new() -> None:
    """The lock measures the lag once a second and holds the first one: a drift is corrected a
    tick at a time; a lag that jumps by 20 ms and stays (the speaker was moved) is held anew
    after LOCK_RETARGET_AFTER windows instead of being pulled back."""
    rng = np.random.default_rng(2)
    lock = EchoLock()
    far_all = _bursts(40 * MIC_RATE, rng)
    delay = 800.0  # ticks: 50 ms
    pos = 0
    for second in range(40):
        if second == 20:
            delay += 320  # moved: 20 ms more
        for _ in range(MIC_RATE // FRAME):
            correction = lock.step()
            start = pos + correction
            far = far_all[start : start + FRAME] if start >= 0 else np.zeros(FRAME)
            echo_at = pos - int(delay)
            near = far_all[echo_at : echo_at + FRAME] * 0.3 if echo_at >= 0 else np.zeros(FRAME)
            lock.push(near.astype(np.int16), far.astype(np.int16))
            pos += FRAME
        if second < 20:
            delay += 3.2  # 0.2 ms a second
        if second == 19:
            # the first 20 s: held where first measured, the correction following the drift
            assert lock.lag is not None and lock.held is not None
            assert abs(lock.lag - lock.held) < 2
            # the echo comes later and later: the reference is read earlier
            assert abs(lock.correction + 3.2 * 19) < 8, lock.correction
            before = lock.correction
    assert lock.held is not None and abs(lock.held - (800 + 3.2 * 20 + 320 + before)) < 8
    assert abs(lock.correction - before) < 8 + 3.2 * LOCK_RETARGET_AFTER


def test_the_echo_lock_carries_no_drift_through_a_pause() -> None:
    """In their first seconds the timelines move the echo quickly (test_aec_e2e: 42 ticks in a
    second). The lock follows, but the rate it learns from that is bounded and carried on only
    while it measures the echo: through the pause before the next answer the read stays put.
    (It once marched 6 ms through such a pause, and that answer's echo was heard as the user.)"""
    rng = np.random.default_rng(3)
    lock = EchoLock()
    far_all = _bursts(13 * MIC_RATE, rng)
    silent = np.zeros(FRAME)
    delay, pos = 800.0, 0
    corrections: list[int] = []
    for second in range(12):
        playing = second < 4 or second >= 9  # an answer, a 5 s pause, the next answer
        for _ in range(MIC_RATE // FRAME):
            start = pos + lock.step()
            far = far_all[start : start + FRAME] if playing else silent
            echo_at = pos - int(delay)
            near = far_all[echo_at : echo_at + FRAME] * 0.3 if playing and echo_at >= 0 else silent
            lock.push(near.astype(np.int16), far.astype(np.int16))
            pos += FRAME
        if second in (1, 2):
            delay -= 42  # the timelines' first seconds
        corrections.append(lock.correction)
    # the quick move is followed ...
    assert corrections[3] > 40, corrections
    # ... and at most one window of the bounded rate is carried into the pause, none through it
    assert abs(corrections[8] - corrections[3]) <= LOCK_MAX_RATE * (MIC_RATE // FRAME) + 1
    assert corrections[8] == corrections[5], corrections
    # the next answer's echo is where it was held
    assert lock.lag is not None and lock.held is not None and abs(lock.lag - lock.held) < 4


def test_the_canceller_is_trusted_once_the_echo_holds_steady() -> None:
    """While the timelines still move the echo quickly (their first seconds after a start) the
    canceller is not trusted with the upload, however much of the speaker it has heard; once
    the echo lock finds the echo where it holds it LEARN_STEADY windows in a row, it is, and
    stays so."""
    rng = np.random.default_rng(4)
    seconds = 10
    far = _bursts((seconds + 1) * MIC_RATE, rng)
    ticks = np.arange(seconds * MIC_RATE)
    delay = 800 - 32 * np.minimum(ticks // MIC_RATE, 4)  # 2 ms a second for 4 s, then still
    near = np.clip(far[np.maximum(ticks - delay, 0)] * 0.3, -32768, 32767).astype(np.int16)
    ref = EchoReference()
    canceller = EchoCanceller(ref)
    t0, played = 1000.0, (far / 32767).astype(np.float32)
    trusted, ahead = [], 5 * FRAME  # the speaker hands its blocks over ~50 ms before
    ref.put(t0, played[:ahead], MIC_RATE)
    for i in range(0, seconds * MIC_RATE, 2 * FRAME):
        ref.put(t0 + (i + ahead) / MIC_RATE, played[i + ahead : i + ahead + 2 * FRAME], MIC_RATE)
        canceller.process(AudioBlock(near[i : i + 2 * FRAME].tobytes(), i), t0 + i / MIC_RATE)
        if (i + 2 * FRAME) % MIC_RATE == 0:
            trusted.append(canceller.learned())
    assert canceller.stats.echo_frames >= LEARN_FRAMES * 2
    assert trusted[:4] == [False] * 4, trusted  # the echo moved: not trusted
    assert trusted[-1] and trusted.index(True) <= 4 + LEARN_STEADY + 1, trusted
    assert all(trusted[trusted.index(True) :])
