"""On the rig: "Hey Jarvis, set a timer for five seconds" spoken into the virtual microphone, the
simulator's model calls set_timer over the real SDK, the ring is heard at the speaker monitor
5 s after the timer was set, and a button press on the mock pin stops it; LEDs and STATUS follow.

Times on the recording are mapped to CLOCK_BOOTTIME (the clock the timer runs on) by sampling how
many samples the recorder has written while it runs: sample i was recorded at about
t0 + i / rate, where t0 is the earliest (boottime - samples / rate) seen (a late write only makes
that estimate later, never earlier).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.app.states import State
from device.audio.earcons import RING_HZ
from device.service import Notifier
from device.simhw.pulse import SpeakerRecording, VirtualSoundCard
from device.simulator.server import LiveSimulator
from device.timers.model import Outcome
from tests.app.harness import BUTTON, Rig, running_daemon
from tests.app.test_conversation_e2e import register_tails, speech_start
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.service.notify_socket import NotifySocket

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RATE = 48000
WINDOW = RATE // 50  # 20 ms
HOP = RATE // 200  # 5 ms
ONSET_TOLERANCE_S = 0.3
"""The issue's bound on when the ring is heard: 5 s +- 0.3 s."""
STOP_BOUND_S = 0.25
"""After the press no ring may be heard: one output block (20 ms) + the output latency (100 ms)
+ the sink's monitor (measured ~20-60 ms); generous."""


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class RecordingClock:
    """Maps recording sample indexes to CLOCK_BOOTTIME (module doc)."""

    def __init__(self, rec: SpeakerRecording) -> None:
        self._rec = rec
        self.t0 = float("inf")

    def sample(self) -> None:
        self.t0 = min(self.t0, boottime() - self._rec.recorded() / RATE)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.01)

    def at(self, index: int) -> float:
        return self.t0 + index / RATE


def ring_frames(x: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    """Per 5 ms hop: whether a 20 ms window starting there is mostly the ring's tone."""
    n = max(0, (len(x) - WINDOW) // HOP + 1)
    if n == 0:
        return np.zeros(0, bool)
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx].astype(np.float64)
    win = np.hanning(WINDOW)
    ref = win * np.exp(-2j * np.pi * RING_HZ * np.arange(WINDOW) / RATE)
    amp = 2 * np.abs(frames @ ref) / win.sum()
    power = np.mean((frames * win) ** 2, axis=1) / np.mean(win**2)
    tonal = (amp**2 / 2) / np.maximum(power, 1.0)
    return np.asarray((amp > 300) & (tonal > 0.6), bool)


def rgb_samples(rig: Rig, seconds: float) -> set[tuple[float, float, float]]:
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(rig.pins())
        time.sleep(0.01)
    return seen


def press(rig: Rig) -> float:
    """Press and release the button; returns the boottime of the press."""
    pin = rig.factory.pin(BUTTON)
    t = boottime()
    pin.drive_low()
    time.sleep(0.15)
    pin.drive_high()
    return t


async def test_spoken_five_second_timer_rings_on_time_and_a_press_stops_it(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_breath = speech("Hey Jarvis, set a timer for five seconds.")
    q_start = speech_start(one_breath, after=int(0.5 * 16000))
    register_tails(simulator, "set a timer for five seconds", one_breath, q_start)
    cfg = sim_config(simulator, tmp_path)
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg, sound_card, simulator, SIM_API_KEY, notifier=Notifier()
        ) as rig:
            with sound_card.record_speaker(RATE) as rec:
                rec.wait_until_flowing()
                clock = RecordingClock(rec)
                sampler = asyncio.create_task(clock.run(), name="recording-clock")
                try:
                    rig.play(one_breath)
                    ringing = await rig.wait_state(State.RINGING, 40)
                    await ns.until(
                        lambda m: any(x.fields.get("STATUS", "").startswith("Ringing") for x in m),
                        5,
                        "STATUS Ringing",
                    )
                    colours = await asyncio.to_thread(rgb_samples, rig, 1.2)
                    await asyncio.sleep(1.0)
                    mark = len(rig.seen)
                    pressed_at = await asyncio.to_thread(press, rig)
                    idle = await rig.wait_state(State.IDLE, 5, since=mark)
                    await asyncio.sleep(1.5)  # a whole ring cycle: nothing more may come
                finally:
                    sampler.cancel()
                audio = rec.snapshot()

    # The model called the tool over the real session and the device answered it.
    (done,) = [d for d in rig.appliance.timers.history() if d.outcome is Outcome.RANG]
    assert done.item.duration_s == 5.0
    assert ringing.status.state is State.RINGING
    assert colours <= {(0.0, 1.0, 0.0), (0.0, 0.0, 0.0)} and (0.0, 1.0, 0.0) in colours
    assert idle.pins == (0.0, 0.0, 0.0)

    tone = ring_frames(audio)
    assert tone.any(), "no ring heard at the speaker"
    first, last = int(np.argmax(tone)), len(tone) - 1 - int(np.argmax(tone[::-1]))
    # The window that first holds the ring holds it for about half its length.
    onset = clock.at(first * HOP + WINDOW // 2)
    assert done.item.set_at.boottime is not None
    expected = done.item.set_at.boottime + 5.0
    ring_end = clock.at(last * HOP + WINDOW)
    print(
        f"ring onset {onset - expected:+.3f} s vs set + 5 s; last ring heard "
        f"{ring_end - pressed_at:+.3f} s after the press"
    )
    assert abs(onset - expected) <= ONSET_TOLERANCE_S
    assert ring_end - pressed_at <= STOP_BOUND_S
    # It rang for the whole time until the press: heard at least once per 1 s cycle.
    cycles = [clock.at(i * HOP) for i in np.flatnonzero(np.diff(tone.astype(int)) == 1)]
    assert len(cycles) >= 8  # four beeps per cycle, at least two cycles
