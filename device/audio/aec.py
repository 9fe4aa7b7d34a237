"""Acoustic echo cancellation on the microphone path (`audio.echo_mode = "aec"`).

    reference = EchoReference()                    # the speaker's output, by the time it is heard
    speaker = Speaker(cfg.audio, state_dir, reference=reference)
    mic = Microphone(cfg.audio, canceller=EchoCanceller(reference))
    # every microphone block (upload and wake word) is then the cancelled signal

The speaker's PortAudio callback hands each block it writes to `EchoReference.put` together with
the monotonic time its first sample reaches the DAC (PortAudio's time info): an append to a
deque, nothing else. On the loop, the reference is resampled to 16 kHz mono and written into a
ring indexed by that time (16 kHz ticks of the monotonic clock), as a `SampleClock` counts the
output's samples through the reports' jitter (the timeline moves a tick at a time). The
microphone stamps each block with the monotonic time its first sample left the ADC (again
PortAudio's time info, kept by a `SampleClock`), and `EchoCanceller.process` feeds the
canceller the reference that was playing at that moment, 10 ms at a time, ahead of the captured
frame. The two clocks are therefore aligned to within the device drivers' reports; what remains
is the room's own path (the sound's flight and reverberation, tens of ms), which WebRTC AEC3's
delay estimator finds by itself. Reports that drift against the samples would still move the
echo against its reference; `EchoLock` measures where the echo is once a second and holds it
still there, moving the reference's read a tick at a time.

The canceller is WebRTC's AEC3 (with its high-pass filter) through `pywebrtc-audio`: pybind11
bindings made for this job, wheels for aarch64 and x86_64 on Python 3.11 and 3.13, numpy in and
out, 1 MiB of memory. livekit's `rtc.AudioProcessingModule` runs the same AEC3 and cancelled as
much on the rig, but costs 25 MiB and 0.4 s to import (a 30 MB wheel and protobuf) and 15-25 %
more CPU per frame (README, "Talking over an answer"). Imported only when the mode is chosen.
Noise suppression stays off (the wake word is tuned on the raw signal).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from device.audio.convert import QUALITY, to_int16
from device.events import MIC_RATE, AudioBlock

log = logging.getLogger(__name__)

Float32 = npt.NDArray[np.float32]
Int16 = npt.NDArray[np.int16]

FRAME = MIC_RATE // 100
"""The canceller works on 10 ms frames."""
RING_S = 2
"""Seconds of reference kept (the microphone's blocks arrive well within this)."""
REANCHOR_S = 0.02
"""A stream's counted time may disagree with a report by this much before it is re-anchored on
the report (a gap or a restart); smaller disagreements are followed smoothly."""
OUTLIERS = 3
"""Reports in a row that must disagree by more than REANCHOR_S (but less than GAP_S) before the
count is re-anchored: a single report off by 20-50 ms is the driver's jitter, not a move (on the
rig such reports came every few seconds, and each re-anchored the timeline twice, there and
back, so the canceller had to find the echo again each time)."""
GAP_S = 0.1
"""A disagreement this large is a gap or a restart at once (jitter never goes that far)."""
FOLLOW_GAIN = 0.02
"""Share of a report's disagreement the counted time takes at first: the reports' jitter (about
2 ms on the rig) is averaged over ~50 reports. The counted rate takes GAIN**2 / 2 of it (a
second-order loop damped as JACK's DLL): a device clock that runs fast or slow (the rig's 44.1
kHz microphone: 430 ppm; a USB microphone's crystal: tens to hundreds) is followed instead of
drifting 20 ms and jumping back, which made the canceller find the echo again and let it through
(bench_aec: 3 of the 4 answers under 25 dB in a run of 60 came with such a jump)."""
NARROW_AFTER = 250
"""Reports (5 s of 20 ms blocks) after which the loop narrows: its gain falls as 1/reports..."""
SETTLED_GAIN = 0.002
"""... to this (a 10 s time constant at 20 ms reports; the rate's loop ~90 s). A loop kept as
quick as at first wanders with the jitter it averages, about 1.6 ms within 3 s (2 ms of jitter,
20 ms reports; 0.17 ms narrowed): a microphone timeline that moves moves the echo against its
reference within an answer, and AEC3 lets it through while it finds it again (test_aec_e2e:
echo at -42 to -35 dBFS in the upload for 100-200 ms of an answer, heard as the user, in 1
answer of 10 to 30; Dec 2026). A clock's rate is set by its crystal and barely moves: it needs
no quick loop once measured."""
AVERAGE_AFTER_ANCHOR = 25
"""Reports whose mean places a `one_device` clock after a re-anchor (its rate measured before):
one report is 2 ms off now and then, and a narrowed loop takes seconds to correct it."""
LEARN_FRAMES = 150
"""10 ms frames of the speaker's sound the canceller hears before it is trusted (1.5 s): until
then (the first answers after a start) the microphone passes the raw signal on and the echo gate
works as in half duplex (measured on the rig: a cold AEC3 lets the first ~300 ms of echo
through, and once took the start of a question for the wake chime's echo)."""
LEARN_STEADY = 3
"""... and the echo lock must have measured the echo where it holds it (within LOCK_STEADY)
this many windows in a row (pauses aside): while the devices' timelines still move quickly
(their loops' first seconds, see SampleClock) the echo moves 1-2 ms a second against its
reference, and AEC3 lets some of it through each time it finds it again (bench_aec: the only
answers under 25 dB were the first or second after a start)."""
LEARN_AT_MOST = 3000
"""... or the canceller has heard this many frames of the speaker (30 s): a room whose echo the
lock cannot measure (a radio louder than the echo) is not kept in half duplex for good."""
LEAD_S = 0.01
"""The reference is read this much ahead of the capture time: a driver that reports its delays
a little late must not make the echo arrive before its reference (AEC3 cannot cancel that)."""


class SampleClock:
    """Maps a stream's sample count to the monotonic clock from (count, time) reports.

    Counting keeps consecutive samples one period apart (reported times jitter); the period and
    the offset follow the reports slowly (a delay-locked loop, as JACK and PulseAudio smooth
    their clocks: quick for the first seconds, then narrowed so that it holds still), and the
    count is re-anchored to a report that disagrees by more than `REANCHOR_S` when `OUTLIERS`
    reports in a row do, or by `GAP_S` or more at once."""

    def __init__(self, rate: int, *, one_device: bool = False) -> None:
        self.rate = rate
        self.one_device = one_device
        """Re-anchors (a gap, a restart) keep the loop narrowed: the stream stays on the device
        whose rate it measured (the speaker's reference: another device comes with a new
        stream). Otherwise a re-anchor makes the loop quick again, and then it narrows."""
        self._period = 1.0 / rate
        """Seconds per sample, as measured against the monotonic clock."""
        self._count = 0
        self._time: float | None = None
        self._off = 0
        """Reports in a row that disagreed by more than REANCHOR_S."""
        self._followed = 0
        """Reports followed so far (the loop narrows as they add up)."""
        self._since_anchor = 0
        self.reanchors = 0

    def report(self, count: int, at: float) -> None:
        """Sample `count` was at monotonic time `at`."""
        if self._time is not None:
            predicted = self.time_of(count)
            error = at - predicted
            if abs(error) <= REANCHOR_S:  # follow: a share of the error now, the rate over time
                self._off = 0
                self._since_anchor += 1
                if self.one_device and self._since_anchor <= AVERAGE_AFTER_ANCHOR:
                    # the rate is known and the anchor was one jittery report: the mean of the
                    # first reports places the count (1/n of each error), then the narrow loop
                    self._count, self._time = count, predicted + error / (self._since_anchor + 1)
                    return
                self._followed += 1
                narrowed = FOLLOW_GAIN * NARROW_AFTER / max(self._followed, NARROW_AFTER)
                gain = max(SETTLED_GAIN, narrowed)
                samples = count - self._count
                self._count, self._time = count, predicted + gain * error
                if samples > 0:
                    period = self._period + gain * gain / 2 * error / samples
                    self._period = min(max(period, 0.99 / self.rate), 1.01 / self.rate)
                return
            self._off += 1
            if abs(error) < GAP_S and self._off < OUTLIERS:
                return  # one report far off: jitter, keep counting
            self.reanchors += 1
        self.anchor(count, at)

    def anchor(self, count: int, at: float) -> None:
        """Sample `count` was at `at`, whatever was counted before (a restart). The measured
        period is kept; the loop is quick again and then narrows, unless `one_device` (a loop
        quick again wanders with the reports' jitter, 0.6-0.9 ms within 3 s, and the echo
        with it)."""
        self._off = self._since_anchor = 0
        if not self.one_device:
            self._followed = 0
        self._count, self._time = count, at

    def time_of(self, count: int) -> float:
        """The monotonic time of sample `count` (the last anchor's count when never reported)."""
        return (self._time or 0.0) + (count - self._count) * self._period


@dataclass(frozen=True, slots=True)
class _Played:
    dac_time: float
    samples: Float32
    rate: int


@dataclass(frozen=True, slots=True)
class _Cut:
    at: float
    """Monotonic time from which nothing handed over before was heard."""


class EchoReference:
    """What the speaker plays, on a 16 kHz timeline of the monotonic clock."""

    def __init__(self) -> None:
        self._handed: collections.deque[_Played | _Cut] = collections.deque(maxlen=1000)
        self._ring = np.zeros(RING_S * MIC_RATE, np.int16)
        self._stamp = np.full(RING_S * MIC_RATE, -1, np.int64)
        self._resampler: soxr.ResampleStream | None = None
        self._clock: SampleClock | None = None
        """When the output's samples are heard (its rate as measured against the monotonic
        clock), from the DAC times reported with its blocks."""
        self._count = 0
        """Output samples handed over since the timeline started."""
        self._write: int | None = None
        """The tick (16 kHz, monotonic clock) the resampler's next output sample belongs at."""
        self.restarts = 0
        self.steps = 0
        """Ticks the timeline moved (one per block at most) to follow the output's clock."""

    # --- PortAudio's output thread ----------------------------------------------------------

    def put(self, dac_time: float, samples: Float32, rate: int) -> None:
        """Hand over a block just written to the device (a copy) and when it will be heard."""
        self._handed.append(_Played(dac_time, samples, rate))

    def cut(self, at: float) -> None:
        """The device dropped what it held at monotonic time `at` (a flush): what was handed
        over to be heard from then on never was (any thread, after the stream's abort)."""
        self._handed.append(_Cut(at))

    # --- the loop -------------------------------------------------------------------------

    def drain(self) -> None:
        """Move what the speaker has handed over into the ring."""
        while self._handed:
            item = self._handed.popleft()
            if isinstance(item, _Cut):
                self._drop_from(round(item.at * MIC_RATE))
            else:
                self._write_block(item)

    def _drop_from(self, tick: int) -> None:
        """Forget the reference from `tick` on and start the timeline afresh with the next
        block: a flushed device never played it, and a canceller given sound that never came
        out (about 130 ms of it at a barge-in on the rig, while the user talks) learns a wrong
        room."""
        self._stamp[self._stamp >= tick] = -1
        self._write = None

    def _write_block(self, played: _Played) -> None:
        step = self._follow(played)
        if step is None:  # a new timeline from this block's reported time
            self.restarts += 1
            if self._clock is None or played.rate != self._clock.rate:
                self._clock = SampleClock(played.rate, one_device=True)
            self._clock.anchor(0, played.dac_time)  # after a flush or a pause: its rate kept
            self._resampler = (
                None
                if played.rate == MIC_RATE
                else soxr.ResampleStream(played.rate, MIC_RATE, 1, "float32", quality=QUALITY)
            )
            self._count, self._write, step = 0, round(played.dac_time * MIC_RATE), 0
        assert self._write is not None
        x = played.samples
        out = x if self._resampler is None else self._resampler.resample_chunk(x)
        pcm = to_int16(out * 32767.0)
        if step and len(pcm):
            self.steps += 1
            if step > 0:  # a tick later: the first sample twice, so that no tick stays empty
                pcm = np.concatenate([pcm[:1], pcm])
            else:  # a tick earlier: over the previous block's last sample
                self._write -= 1
        self._store(self._write, pcm)
        self._write += len(pcm)
        self._count += len(x)

    def _follow(self, played: _Played) -> int | None:
        """How many ticks (-1, 0, 1) the timeline moves before `played` to keep to the output's
        clock, or None if `played` starts a new timeline (a restart, a gap, another rate).

        The output's clock runs at its own rate against the monotonic one (the rig's 48 kHz
        sink: 170 ppm slow, 2 ms in 12 s), and its DAC times jitter. A `SampleClock` follows
        the rate through the jitter and a lasting change of the latency (re-anchored on a gap
        or a restart), and the timeline follows the clock a tick at a time, as the echo itself
        moves: a timeline that was moved by 2 ms at once (it was, every 12 s on the rig) moved
        the echo against its reference, and AEC3 let it through while it found it again."""
        clock = self._clock
        if clock is None or played.rate != clock.rate or self._write is None:
            return None
        reanchors = clock.reanchors
        clock.report(self._count, played.dac_time)
        if clock.reanchors != reanchors:
            return None
        pending = 0.0 if self._resampler is None else self._resampler.delay()
        behind = clock.time_of(self._count) * MIC_RATE - pending - self._write
        return 1 if behind >= 0.5 else -1 if behind <= -0.5 else 0

    def _store(self, tick: int, pcm: Int16) -> None:
        if not len(pcm):
            return
        if len(pcm) > len(self._ring):
            tick, pcm = tick + len(pcm) - len(self._ring), pcm[-len(self._ring) :]
        ticks = np.arange(tick, tick + len(pcm))
        slots = ticks % len(self._ring)
        self._ring[slots] = pcm
        self._stamp[slots] = ticks

    def window(self, tick: int, n: int) -> Int16:
        """The reference from `tick` for `n` samples (silence where nothing was played)."""
        ticks = np.arange(tick, tick + n)
        slots = ticks % len(self._ring)
        out: Int16 = np.where(self._stamp[slots] == ticks, self._ring[slots], 0).astype(np.int16)
        return out


LOCK_WINDOW = MIC_RATE
"""Samples of the microphone and its reference compared to measure the echo's lag (1 s), once
per window."""
LOCK_MAX_LAG = MIC_RATE // 4
"""The echo is looked for up to 250 ms after its reference (the room's flight, LEAD_S and what
the devices' reports leave)."""
LOCK_MIN_PEAK = 0.15
"""The whitened cross-correlation's peak a measurement needs to count (the rig's echo of an
answer: 0.2-0.75 over half-second windows; a window without a clear echo is skipped)."""
LOCK_RETARGET = MIC_RATE * 5 // 1000
"""A lag this far (5 ms) from the held one, measured LOCK_RETARGET_AFTER times in a row, is a
new room (the speaker was moved): it is held from then on and nothing is corrected."""
LOCK_RETARGET_AFTER = 3
LOCK_STEADY = 8
"""A window whose lag is within this (ticks: 0.5 ms) of the held one found the echo steady."""
LOCK_RATE_GAIN = 0.5
"""Share of a window's error taken into the drift's rate (the loop's second order)."""
LOCK_MAX_RATE = 0.05
"""The drift's rate is believed up to this (ticks per 10 ms frame: 0.3 ms a second, 300 ppm;
the rig's settled timelines drift 0.17 ms a second). In their first seconds the timelines move
the echo 1-2 ms a second (test_aec_e2e: 69.5 -> 62.8 ms within 5 s): a rate learned from that
and carried on marched the read 6 ms through the pause before the next answer, whose echo then
came through while AEC3 found it again (heard as the user in 1 of 2 runs, Dec 2026)."""
LOCK_MAX_CORRECTION = MIC_RATE // 2
"""Corrections add up to at most this (0.5 s, within the reference's ring) before the lock lets
go and starts over. They add up for as long as the two timelines drift apart (on the rig 0.17
ms a second, 17 ms within 100 s). The reference read stays the held lag before its echo, so it
is always one already played, whatever the sum."""


class EchoLock:
    """Holds the echo still against its reference: the lag between them, measured once a
    second, is kept where it was first measured by moving where the reference is read, a tick
    (1/16 ms) per 10 ms frame.

    The two timelines map each stream's samples to the monotonic clock through the devices'
    reports. Reports that drift against the samples (the rig's PulseAudio: the echo moved 0.17
    ms per second against the reference, 93 -> 78 ms within 90 s, while in the samples played
    and captured it stood still to 0.01 ms) move the echo, and an echo that moves for good makes
    AEC3 find it again and again: simulated, the same answer through the same room measured 52
    dB of echo reduction in each of 11 answers with the echo still, 30-50 dB with it moving
    0.2 ms/s (one-tick steps back and forth, 3 per second, cost nothing: 51.6-52.2 dB).
    The echo itself is the one clock both streams agree on. Measured on the microphone as
    captured, so the canceller's own output plays no part; a window whose peak is weak (no echo,
    or a talker over it) changes nothing."""

    def __init__(self) -> None:
        self._near = np.zeros(LOCK_WINDOW, np.float32)
        self._far = np.zeros(LOCK_WINDOW, np.float32)
        self._filled = 0
        self.held: float | None = None
        """The lag (ticks, echo after its reference) the lock holds: its first measurement."""
        self._away = 0
        """Measurements in a row further than LOCK_RETARGET from the held lag."""
        self.correction = 0
        """Ticks added to where the reference is read (negative: earlier)."""
        self._aim = 0.0
        """Where the correction is headed: it follows at a tick a frame at most."""
        self._rate = 0.0
        """Ticks a frame the echo moves (the two timelines' drift), learned from the errors."""
        self.lag: float | None = None
        """The last lag measured (ticks, against the reference as read: corrections included)."""
        self._measuring = False
        """The last window measured the echo: the drift's rate is carried on only while it does
        (through a pause or a talker nothing confirms it)."""
        self.steady = 0
        """Windows in a row (those skipped aside) that found the echo within LOCK_STEADY of
        where it is held."""

    def step(self) -> int:
        """The correction for the next frame (it moves by at most one tick a frame)."""
        if self._measuring:
            self._aim += self._rate
        aim = round(self._aim)
        if aim != self.correction:
            self.correction += 1 if aim > self.correction else -1
        return self.correction

    def push(self, near: Int16, far: Int16) -> None:
        """A frame of the microphone as captured and the reference it was given."""
        at, n = self._filled, len(near)
        self._near[at : at + n] = near
        self._far[at : at + n] = far
        self._filled += n
        if self._filled >= LOCK_WINDOW:  # frames divide the window: it is full and in order
            self._filled = 0
            self._measure()

    def _measure(self) -> None:
        self._measuring = False
        if not self._far.any() or not self._near.any():
            return
        lag, peak = _whitened_lag(self._far, self._near, LOCK_MAX_LAG)
        if peak < LOCK_MIN_PEAK:
            return
        self.lag = lag
        if self.held is None:
            self.held = lag
            return
        error = lag - self.held
        self.steady = self.steady + 1 if abs(error) <= LOCK_STEADY else 0
        if abs(error) > LOCK_RETARGET:
            self._away += 1
            if self._away >= LOCK_RETARGET_AFTER:
                self.held, self._away, self._aim = lag, 0, float(self.correction)
                self._rate = 0.0
            return
        self._away = 0
        self._measuring = True
        # a second-order loop: the error now, and the rate it implies over the coming windows,
        # so that a steady drift is followed a tick at a time instead of in a jump a second
        self._aim -= error
        self._rate -= LOCK_RATE_GAIN * error / (LOCK_WINDOW // FRAME)
        self._rate = min(max(self._rate, -LOCK_MAX_RATE), LOCK_MAX_RATE)
        if abs(self._aim) > LOCK_MAX_CORRECTION:
            self.correction, self._aim, self._rate, self.held = 0, 0.0, 0.0, None
            self.steady = 0


def _whitened_lag(far: Float32, near: Float32, max_lag: int) -> tuple[float, float]:
    """The lag (samples, `near` after `far`, 0..max_lag, to a fraction) at which the two
    correlate best, whitened (GCC-PHAT: the echo's timing, not its spectrum), and the peak."""
    size = 1 << (len(far) + len(near) - 1).bit_length()
    spectrum = np.fft.rfft(near, size) * np.conj(np.fft.rfft(far, size))
    magnitude = np.abs(spectrum)
    spectrum /= magnitude + 1e-6 * float(magnitude.max())
    corr = np.fft.irfft(spectrum, size)[: max_lag + 1]
    k = int(np.argmax(corr))
    offset = 0.0
    if 0 < k < max_lag:
        a, b, c = corr[k - 1], corr[k], corr[k + 1]
        denominator = a - 2 * b + c
        offset = 0.5 * (a - c) / denominator if denominator else 0.0
    return k + offset, float(corr[k])


@dataclass
class CancellerStats:
    """What the canceller has done (for doctor, the bench and the tests)."""

    frames: int = 0
    """10 ms frames processed."""
    echo_frames: int = 0
    """Frames whose reference carried sound (the speaker was playing)."""


class EchoCanceller:
    """Removes the speaker's sound from 16 kHz microphone blocks (WebRTC AEC3)."""

    def __init__(self, reference: EchoReference, *, lock: bool = True) -> None:
        """`lock`: hold the echo still against the reference (EchoLock); off only to measure
        what it does."""
        import pywebrtc_audio

        self.reference = reference
        self._aec = pywebrtc_audio.EchoCanceller(sample_rate=MIC_RATE, num_channels=1)
        self.stats = CancellerStats()
        self.lock = EchoLock() if lock else None
        self._trusted = False

    def process(self, block: AudioBlock, captured_at: float) -> AudioBlock:
        """The block with the echo of what was playing at `captured_at` (its first sample's
        monotonic time) removed. Blocks must be whole 10 ms frames."""
        self.reference.drain()
        near = np.frombuffer(block.pcm, np.int16)
        n = len(near)
        if n % FRAME:
            raise ValueError(f"echo cancellation needs whole 10 ms blocks, got {n} samples")
        tick = round((captured_at + LEAD_S) * MIC_RATE)
        lock = self.lock
        out = np.empty(n, np.int16)
        for i in range(0, n, FRAME):
            far = self.reference.window(tick + i + (lock.step() if lock else 0), FRAME)
            if far.any():
                self.stats.echo_frames += 1
            out[i : i + FRAME] = self._aec.process(near[i : i + FRAME], far)
            if lock is not None:
                lock.push(near[i : i + FRAME], far)
        self.stats.frames += n // FRAME
        return AudioBlock(out.tobytes(), block.start, uncancelled=block.pcm)

    def learned(self) -> bool:
        """Whether the canceller is trusted with the upload: it has heard LEARN_FRAMES of the
        speaker, and its echo lock has found the echo steady (LEARN_STEADY) or it has heard
        LEARN_AT_MOST. Once trusted, it stays so."""
        if not self._trusted:
            frames = self.stats.echo_frames
            steady = self.lock is None or self.lock.steady >= LEARN_STEADY
            self._trusted = frames >= LEARN_FRAMES and (steady or frames >= LEARN_AT_MOST)
            if self._trusted:
                log.info(
                    "echo canceller trusted with the upload after %.1f s of the speaker's sound%s",
                    frames / 100,
                    "" if steady else " (the echo lock never found the echo steady)",
                )
        return self._trusted
