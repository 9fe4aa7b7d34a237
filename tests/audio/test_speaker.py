"""Speaker on the rig: what is played comes out of the `speaker` sink, stops and ends on cue."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.audio import earcons
from device.audio.aec import EchoReference
from device.audio.earcons import Earcon
from device.audio.output import STUCK_S, CallbackOutput, WriterOutput
from device.audio.speaker import Speaker
from device.config import AudioConfig
from device.events import MODEL_RATE, ErrorKind
from device.simhw.pulse import VirtualSoundCard
from tests.audio.rig import loud, wait_for, wait_recording
from tests.conftest import SpeechFactory
from tests.simhw.test_rig import best_correlation

pytestmark = pytest.mark.integration

BLOCK_MS = AudioConfig().output_block_ms


@pytest.fixture
async def speaker(sound_card: VirtualSoundCard, tmp_path: Path) -> AsyncIterator[Speaker]:
    spk = Speaker(AudioConfig(output_block_ms=BLOCK_MS, volume=100), tmp_path)
    async with spk.running():
        yield spk


def chirp(seconds: float, amp: float = 0.5) -> npt.NDArray[np.int16]:
    """Constant-level sweep 300 -> 3000 Hz: an unambiguous alignment and a sharp end."""
    t = np.arange(int(MODEL_RATE * seconds)) / MODEL_RATE
    phase = 2 * np.pi * (300 * t + (2700 / (2 * seconds)) * t**2)
    return (amp * 32767 * np.sin(phase)).astype(np.int16)


def align(ref: npt.NDArray[np.int16], rec: npt.NDArray[np.int16]) -> int:
    """Offset in rec where ref starts (best cross-correlation)."""
    a, b = ref.astype(np.float64), rec.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: len(b) - len(a) + 1]
    return int(np.argmax(xc))


async def test_model_speech_comes_out_intact(
    sound_card: VirtualSoundCard, speaker: Speaker, speech: SpeechFactory
) -> None:
    clip = speech("the weather today is sunny with a light breeze", MODEL_RATE)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        for i in range(0, len(clip), 960):  # 40 ms chunks, as the Live API sends them
            speaker.play(clip[i : i + 960].tobytes())
        await asyncio.wait_for(speaker.drain(), 30)
        await asyncio.sleep(0.2)
    got = rec.samples
    half = len(clip) // 2
    # On failure, say where the speech was lost (once in ~10 CI runs it came out at 0.65 with no
    # underrun the writer saw): its head, its tail, or all of it.
    head, tail = best_correlation(clip[:half], got), best_correlation(clip[half:], got)
    where = f"head {head:.2f}, tail {tail:.2f}, loud samples {len(loud(got))} vs {len(loud(clip))}"
    assert best_correlation(clip, got) > 0.9, where
    assert speaker.underruns == 0


async def test_drain_returns_after_the_last_sample_was_heard(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    clip = chirp(1.5)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        speaker.play(clip.tobytes())
        assert speaker.is_playing
        await asyncio.wait_for(speaker.drain(), 30)
        at_return = rec.snapshot()
        assert not speaker.is_playing
        await asyncio.sleep(0.5)
    start = align(clip, rec.samples)
    end = start + len(clip)
    # What the recorder had when drain() returned already holds the clip's end, up to the
    # recorder's own buffering (10 ms fragments).
    assert len(at_return) >= end - int(0.03 * MODEL_RATE)
    assert len(loud(rec.samples[end + 100 :])) == 0


async def test_flush_is_silent_at_once_and_drops_the_device_buffer(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    clip = chirp(4.0)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        speaker.play(clip.tobytes())  # one chunk: flush must also cut the chunk in progress
        await wait_for(lambda: len(loud(rec.snapshot())) > MODEL_RATE, 20, "a second of the clip")
        discarded_s = speaker.flush()
        await wait_for(lambda: not speaker.is_playing, 2, "is_playing to turn false")
        await asyncio.sleep(1.0)
        speaker.play(chirp(0.3).tobytes())  # the speaker still works after a flush
        await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.sleep(0.3)
    played = rec.samples
    start = align(clip[: MODEL_RATE // 2], played)
    sounding = loud(played[start:])
    first_gap = int(np.argmax(np.diff(sounding) > MODEL_RATE // 10))
    heard = int(sounding[first_gap]) + 1  # samples of the clip heard before the silence
    flushed_at = len(clip) - round(discarded_s * MODEL_RATE)  # clip position at flush()
    assert 0 < discarded_s < 3.0
    # After flush() returned, at most the block being rendered at that moment was heard ...
    assert heard - flushed_at <= MODEL_RATE * BLOCK_MS // 1000 + 48  # + resampler delay
    # ... and not even what the device still held: the stream was aborted, its buffer dropped
    # (which is all that went missing: a few device buffers at most).
    assert heard < flushed_at
    assert heard >= flushed_at - 3 * MODEL_RATE * speaker.cfg.output_latency_ms // 1000
    # The content up to the cut is the clip itself.
    assert best_correlation(clip[: heard - 500], played[start : start + heard]) > 0.9


async def _long_answer_after_barge_ins(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Three barge-ins (each aborts and restarts the stream), then a 6 s answer: (clip, heard)."""
    for _ in range(3):
        speaker.play(chirp(1.0).tobytes())
        await asyncio.sleep(0.3)
        speaker.flush()
        await asyncio.sleep(0.1)
    clip = chirp(6.0)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        for i in range(0, len(clip), 960):  # 40 ms chunks at 4x real time, like the server
            speaker.play(clip[i : i + 960].tobytes())
            await asyncio.sleep(0.01)
        await asyncio.wait_for(speaker.drain(), 30)
        await asyncio.sleep(0.2)
    return clip, rec.samples


def _longest_gap(clip: npt.NDArray[np.int16], played: npt.NDArray[np.int16]) -> tuple[int, int]:
    """(samples, where): the longest silence inside the clip as heard; asserts all was heard."""
    start = align(clip, played)
    sounding = loud(played[start : start + len(clip)])
    assert int(sounding[-1] - sounding[0]) > len(clip) - 96  # all of it was heard
    gaps = np.diff(sounding)
    return int(np.max(gaps)), int(sounding[int(np.argmax(gaps))])


async def test_after_barge_ins_a_long_answer_still_plays_gapless(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    """A restart that left the stream broken (a device buffer too small for the rig, audio
    dropped at a cut) gaps every time. About once in 80 runs here (once in CI) the rig's PulseAudio
    drops ~20 ms with nothing the speaker can see (no underrun, no PortAudio underflow; stalls
    forced on the callback or on PulseAudio all show as underflows): such a run is reported
    and the scenario played once more, which must be whole."""
    clip, played = await _long_answer_after_barge_ins(sound_card, speaker)
    gap, at = _longest_gap(clip, played)
    if gap > 24 and speaker.underflows == 0 and speaker.underruns == 0:
        warnings.warn(
            f"rig: a {gap / MODEL_RATE * 1000:.0f} ms gap at {at / MODEL_RATE:.2f} s of the "
            "answer with no underrun or underflow; playing the scenario again",
            stacklevel=1,
        )
        clip, played = await _long_answer_after_barge_ins(sound_card, speaker)
        gap, at = _longest_gap(clip, played)
    assert gap <= 24, f"{gap} samples of silence at {at / MODEL_RATE:.3f} s"  # zero crossings
    assert best_correlation(clip, played) > 0.9
    assert speaker.underruns == 0
    assert speaker.supervisor.failures == 0  # the restarts were not taken for a dead device


async def test_volume_scales_output_and_persists(
    sound_card: VirtualSoundCard, tmp_path: Path
) -> None:
    clip = chirp(0.5)
    levels = {}
    for volume in (100, 50):
        spk = Speaker(AudioConfig(volume=100), tmp_path)
        async with spk.running():
            if volume != 100:
                assert spk.volume == 100
                spk.set_volume(volume)
            with sound_card.record_speaker(MODEL_RATE) as rec:
                await wait_recording(rec)
                spk.play(clip.tobytes())
                await asyncio.wait_for(spk.drain(), 10)
                await asyncio.sleep(0.2)
            levels[volume] = float(np.percentile(np.abs(rec.samples.astype(float)), 99.5))
    assert levels[50] / levels[100] == pytest.approx(0.25, rel=0.1)  # squared curve
    assert Speaker(AudioConfig(volume=100), tmp_path).volume == 50


@pytest.mark.parametrize("kind", [Earcon.WAKE, ErrorKind.NO_NETWORK])
async def test_earcons_play_through_the_speaker(
    sound_card: VirtualSoundCard, speaker: Speaker, kind: Earcon | ErrorKind
) -> None:
    speaker.hold_open(True)  # a running stream on silence, as when the wake chime sounds
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        await asyncio.sleep(0.3)
        speaker.play_earcon(kind)
        await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.sleep(0.2)
    assert best_correlation(earcons.render(kind), rec.samples) > 0.9


async def test_an_earcon_leaves_nothing_behind_for_the_next_reply(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    """The resampler keeps the last ~8 ms of what it converted until more comes. An earcon
    with no drain() after it (the end chime) left that tail to sound ahead of the next reply:
    a blip of the chime seconds later, and the bench had timed replies by it."""
    speaker.hold_open(True)
    clip = chirp(0.3)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        await asyncio.sleep(0.3)
        speaker.play_earcon(Earcon.END)
        await asyncio.sleep(0.6)  # the chime has played; silence since
        for i in range(0, len(clip), 960):
            speaker.play(clip[i : i + 960].tobytes())
        await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.sleep(0.2)
    assert best_correlation(earcons.render(Earcon.END), rec.samples) > 0.9
    at = align(clip, rec.samples)
    assert loud(rec.samples[at - MODEL_RATE // 5 : at]).size == 0  # nothing in the 200 ms before


async def test_a_sound_after_silence_is_heard_from_its_first_sample(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    """Between replies the device runs dry; the next reply is written into it as it comes and
    is heard whole from its first sample, three times running."""
    speaker.hold_open(True)  # in a conversation
    clip = chirp(0.5)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        for _ in range(3):
            await asyncio.sleep(0.5)
            for i in range(0, len(clip), 960):  # 40 ms chunks, as the Live API sends them
                speaker.play(clip[i : i + 960].tobytes())
            await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.sleep(0.2)
    sounding = loud(rec.samples)
    starts = [int(sounding[0])] + [
        int(sounding[i + 1]) for i in np.nonzero(np.diff(sounding) > MODEL_RATE // 5)[0]
    ]
    assert len(starts) == 3
    for at in starts:  # each one whole from its first 10 ms on
        head = rec.samples[at - 48 : at + len(clip)]
        assert best_correlation(clip[:240], head[: 240 + 96]) > 0.95
        assert best_correlation(clip, rec.samples[at - 48 : at + len(clip) + 48]) > 0.95
    assert speaker.underruns == 0


async def test_between_sounds_the_writer_writes_nothing(speaker: Speaker) -> None:
    """Half and full duplex: with nothing to play the writer sleeps (no calls into PortAudio,
    no CPU; the device runs dry), within a conversation too, and wakes for the next sound."""
    speaker.hold_open(True)
    stream = speaker._stream
    assert isinstance(stream, WriterOutput)
    for _ in range(2):
        before = stream.writes
        speaker.play(chirp(0.3).tobytes())
        await asyncio.wait_for(speaker.drain(), 10)
        written = stream.writes
        assert written - before >= 0.3 / (BLOCK_MS / 1000)  # the sound, block by block
        await asyncio.sleep(1.0)
        assert stream.writes == written  # and nothing since
    assert speaker.underruns == 0 and speaker.underflows == 0


async def test_late_audio_underruns_are_counted_and_play_silence(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    piece = chirp(0.1)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        for _ in range(3):  # 100 ms of audio every 400 ms: the buffer runs dry in between
            speaker.play(piece.tobytes())
            await asyncio.sleep(0.4)
        speaker.play(piece.tobytes())
        await asyncio.wait_for(speaker.drain(), 10)  # the end of the reply is no underrun
        await asyncio.sleep(0.2)
    assert speaker.underruns == 3  # the dry spells inside the reply, not the end after drain()
    sounding = loud(rec.samples)
    gaps = np.diff(sounding)
    assert np.count_nonzero(gaps > MODEL_RATE // 5) == 3  # silence between the pieces


async def test_the_summary_counts_the_underruns_of_every_stream(
    sound_card: VirtualSoundCard, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the soak reads: the count when the speaker stops, not the count of a stream that is
    gone by then (the summary used to read it after letting go of the stream: always 0)."""
    caplog.set_level(logging.INFO, logger="device.audio.speaker")
    spk = Speaker(AudioConfig(), tmp_path)
    piece = chirp(0.1)
    async with spk.running():
        await wait_for(lambda: spk.flowing, 10, "the speaker flowing")
        spk.play(piece.tobytes())
        await asyncio.sleep(0.4)  # the buffer runs dry inside the reply: one underrun
        spk.play(piece.tobytes())
        await asyncio.wait_for(spk.drain(), 10)
    assert spk.underruns == 1
    assert "speaker: 1 underruns, 0 device underflows" in caplog.text


async def test_a_stall_while_a_sound_plays_is_reported_as_the_longest_block_gap(
    sound_card: VirtualSoundCard, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the soak reads next to the underflows: how long the device had to cover while the
    callback could not run (here the GIL held for 250 ms, as a full garbage collection does)."""
    caplog.set_level(logging.INFO, logger="device.audio.speaker")
    spk = Speaker(AudioConfig(), tmp_path)
    async with spk.running():
        await wait_for(lambda: spk.flowing, 10, "the speaker flowing")
        spk.play(chirp(1.0).tobytes())
        await asyncio.sleep(0.3)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)  # no other thread gets the GIL meanwhile
        try:
            until = time.monotonic() + 0.25
            while time.monotonic() < until:
                pass
        finally:
            sys.setswitchinterval(interval)
        await asyncio.wait_for(spk.drain(), 10)
    assert spk.longest_block_gap >= 0.2
    reported = re.search(r"blocks at most (\d+) ms apart while playing", caplog.text)
    assert reported is not None and int(reported[1]) >= 200


async def test_idle_stream_stops_calling_back_and_the_next_sound_starts_it(
    sound_card: VirtualSoundCard, tmp_path: Path
) -> None:
    """With an echo canceller the output is a callback stream, which calls back on silence
    until it is stopped while idle (the writer has nothing to stop: it writes nothing)."""
    cfg = AudioConfig(volume=100, output_idle_pause_s=0.5)
    spk = Speaker(cfg, tmp_path, reference=EchoReference())
    clip = chirp(1.0)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        async with spk.running():
            stream = spk._stream
            assert isinstance(stream, CallbackOutput)
            await wait_for(lambda: spk.flowing, 20, "the output to flow")
            # Held open (a conversation): it keeps running past the idle pause.
            spk.hold_open(True)
            before = stream.callbacks
            await asyncio.sleep(1.5)
            assert stream.callbacks - before >= 1.0 / (BLOCK_MS / 1000) * 0.5
            # Idle: after the pause no callbacks at all, and no outage is reported for it.
            spk.hold_open(False)
            await asyncio.sleep(1.5)
            quiet = stream.callbacks
            await asyncio.sleep(1.0)
            assert stream.callbacks == quiet
            assert spk.flowing and not spk.is_playing
            # The next sound starts the same stream again and is heard whole.
            spk.play(clip.tobytes())
            await asyncio.wait_for(spk.drain(), 10)
            await asyncio.sleep(0.3)
            assert spk._stream is stream and stream.callbacks > quiet
            assert spk.supervisor.failures == 0 and spk.supervisor.failed_opens == 0
            # And it stops again once idle.
            await asyncio.sleep(1.5)
            quiet = stream.callbacks
            await asyncio.sleep(0.5)
            assert stream.callbacks == quiet
    start = align(clip, rec.samples)
    assert best_correlation(clip, rec.samples[start : start + len(clip)]) > 0.9
    assert spk.underruns == 0


async def test_a_sound_queued_as_the_idle_pause_is_decided_plays_whole(
    sound_card: VirtualSoundCard, tmp_path: Path
) -> None:
    """The idle pause (of a callback stream) is decided on the loop and done off it; a reply
    starting in between must not lose what the pause's abort would drop (the device buffer)
    nor stall behind it."""
    speaker = Speaker(AudioConfig(volume=100), tmp_path, reference=EchoReference())
    async with speaker.running():
        await _a_sound_queued_as_the_idle_pause_is_decided(sound_card, speaker)


async def _a_sound_queued_as_the_idle_pause_is_decided(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    loop = asyncio.get_running_loop()
    stream = speaker._stream
    assert isinstance(stream, CallbackOutput)
    await wait_for(lambda: speaker.flowing, 20, "the output to flow")
    clip = chirp(1.5)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        decided = time.monotonic()  # the idle loop decided to pause ...
        speaker.play(clip.tobytes())  # ... a reply's first audio arrives ...
        await asyncio.sleep(0.1)  # ... and is on its way to the DAC when the pause runs
        assert not await loop.run_in_executor(None, stream.pause, lambda: speaker._idle(decided))
        # A sound queued between the pause's two looks: the pause is called off, too.
        looks = iter([True, False])
        assert not await loop.run_in_executor(None, stream.pause, lambda: next(looks))
        await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.sleep(0.2)
    assert _longest_gap(clip, rec.samples)[0] <= 24  # all heard, no gap
    assert speaker.underruns == 0 and speaker.supervisor.failures == 0
    # Idle for real: the same call pauses the stream.
    assert await loop.run_in_executor(None, stream.pause, lambda: speaker._idle(time.monotonic()))


def tone(hz: float, seconds: float, amp: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(int(MODEL_RATE * seconds)) / MODEL_RATE
    return (amp * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def test_an_alert_pauses_speech_which_then_goes_on_whole(
    sound_card: VirtualSoundCard, speaker: Speaker
) -> None:
    """A ring over an answer: from start_alert() only the alert is heard (no speech under or
    between its beeps), after stop_alert() the speech goes on where it paused, nothing of it
    lost or repeated, and drain() waits for the speech, not the alert."""
    clip = chirp(3.0)  # 300-3000 Hz: told apart from the 5 kHz alert in every 10 ms frame
    beep = np.concatenate([tone(5000, 0.2), np.zeros(MODEL_RATE // 10, np.int16)])
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        speaker.play(clip.tobytes())
        await wait_for(lambda: len(loud(rec.snapshot())) > MODEL_RATE, 20, "a second of speech")
        speaker.start_alert()
        for _ in range(4):
            speaker.play_alert(beep.tobytes())
        drained = asyncio.create_task(speaker.drain())
        await asyncio.sleep(1.0)
        assert not drained.done() and speaker.is_playing  # the rest of the speech waits
        speaker.stop_alert()
        await asyncio.wait_for(drained, 10)
        await asyncio.sleep(0.3)
    frame = MODEL_RATE // 100
    x = rec.samples[: len(rec.samples) // frame * frame].astype(np.float64).reshape(-1, frame)
    spectrum = np.abs(np.fft.rfft(x, axis=1)) ** 2
    high = spectrum[:, 40:].sum(axis=1) / np.maximum(spectrum.sum(axis=1), 1e-9)  # >= 4 kHz
    sounding = np.sqrt(np.mean(x**2, axis=1)) > 1000
    alert, speech = sounding & (high > 0.5), sounding & (high < 0.1)
    first, last = int(np.argmax(alert)), len(alert) - 1 - int(np.argmax(alert[::-1]))
    assert alert.any() and 8 <= alert.sum() <= 80  # 4 x 0.2 s asked, about 1 s allowed to play
    assert not speech[first + 1 : last].any()  # never under or between the beeps
    assert speech[:first].any() and speech[last + 1 :].any()  # before, and again after
    # Every 10 ms of the speech was heard once: what played before the alert and after it
    # adds up to the clip (give or take the frames shared with the alert's edges).
    heard = int(speech.sum())
    assert abs(heard - len(clip) / frame) <= 4, heard
    # And it is the clip: its head up to the pause, then the rest from there on.
    played = rec.samples
    start = align(clip[: MODEL_RATE // 2], played)
    paused_at = int(loud(played[: first * frame])[-1]) + 1 - start  # clip heard before the alert
    rest = clip[paused_at:]
    after = (last - 1) * frame  # the alert's last frame may already hold the resumed speech
    resumed = after + align(rest[: MODEL_RATE // 4], played[after:])
    assert best_correlation(clip[:paused_at], played[start : start + paused_at]) > 0.9
    assert best_correlation(rest, played[resumed : resumed + len(rest)]) > 0.9
    assert speaker.underruns == 0


async def test_a_sound_server_that_stops_answering_is_reported_and_the_speaker_comes_back(
    sound_card: VirtualSoundCard, tmp_path: Path
) -> None:
    """A flush while the sound server does not answer: PortAudio's abort waits for as long as
    it does. Before, the stream stayed "cutting" (no failure) and the speaker silent for good.
    Now the supervisor reports it after STUCK_S without the loop waiting, and the speaker opens
    again and plays once the server answers."""
    events: list[object] = []
    spk = Speaker(AudioConfig(volume=100), tmp_path, on_event=events.append)
    async with spk.running():
        spk.hold_open(True)
        spk.play(chirp(2.0).tobytes())
        await asyncio.sleep(0.3)
        with sound_card.frozen():
            spk.flush()  # the abort now waits on the server
            t0 = time.monotonic()
            lag = 0.0
            while spk.supervisor.failures == 0 and time.monotonic() - t0 < STUCK_S + 5:
                before = time.monotonic()
                await asyncio.sleep(0.05)
                lag = max(lag, time.monotonic() - before - 0.05)
            reported = time.monotonic() - t0
            print(f"reported {reported:.2f} s after the flush; the loop lagged {lag * 1000:.0f} ms")
            assert spk.supervisor.failures == 1, "a stream stuck stopping was never reported"
            assert STUCK_S <= reported < STUCK_S + 3
            assert lag < 1.0  # the loop did not wait on the device
        await _opens_again_and_plays(sound_card, spk)
    assert any("did not stop within" in str(e) for e in events), events


async def test_a_sound_server_that_freezes_under_a_reply_is_reported_and_the_speaker_comes_back(
    sound_card: VirtualSoundCard, tmp_path: Path
) -> None:
    """No flush this time: the server stops taking audio in the middle of a reply. The writer
    waits for room in the device buffer that never comes; the supervisor must hear of it (a
    stall, or a call into PortAudio that does not return) and open the speaker again once the
    server answers."""
    events: list[object] = []
    spk = Speaker(AudioConfig(volume=100), tmp_path, on_event=events.append)
    async with spk.running():
        spk.play(chirp(20.0).tobytes())
        await asyncio.sleep(0.3)
        with sound_card.frozen():
            t0 = time.monotonic()
            await wait_for(lambda: spk.supervisor.failures == 1, STUCK_S + 5, "the stall reported")
            reported = time.monotonic() - t0
            print(f"reported {reported:.2f} s after the server froze")
        spk.flush()
        await _opens_again_and_plays(sound_card, spk)
    assert any("stalled" in str(e) or "did not play" in str(e) for e in events), events


async def _opens_again_and_plays(sound_card: VirtualSoundCard, spk: Speaker) -> None:
    """After an outage: the speaker opens again and a sound is heard whole."""
    await wait_for(lambda: spk.flowing, 20, "the speaker to open again")
    clip = chirp(0.5)
    with sound_card.record_speaker(MODEL_RATE) as rec:
        await wait_recording(rec)
        spk.play(clip.tobytes())
        await asyncio.wait_for(spk.drain(), 10)
        await asyncio.sleep(0.2)
    assert best_correlation(clip, rec.samples) > 0.9
