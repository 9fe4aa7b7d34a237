"""Privacy: a minute of talk without the wake word never leaves the device (nor enters the
upload ledger)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.app.states import State
from device.privacy.ledger import Ledger
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.app.test_conversation_e2e import DARK
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHATTER = [
    "Did you remember to buy milk on the way home?",
    "The train was late again this morning, so I missed the meeting.",
    "Hey, can you pass me the salt please?",
    "I think it is going to rain later, take an umbrella.",
    "Harvey and Marvin are coming over for dinner on Saturday.",
    "What time does the football match start tonight?",
    "Jars of jam are on the top shelf, next to the honey.",
    "Okay, let us watch one more episode and then go to bed.",
    "My sister called, she says hello to everyone.",
    "The kettle is boiling, do you want tea or coffee?",
]


def loud_s(pcm: npt.NDArray[np.int16]) -> float:
    """Seconds of 20 ms frames (16 kHz) louder than a quiet room."""
    frames = pcm[: len(pcm) // 320 * 320].astype(np.float64).reshape(-1, 320)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > 400)) * 0.02


async def test_a_minute_of_talk_sends_nothing(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    voices = [{}, {"voice": "en-gb+m3"}, {"voice": "en-us+f3", "speed": 150}]
    parts = []
    for i, text in enumerate(CHATTER * 2):
        parts.append(speech(text, **voices[i % len(voices)]))
        parts.append(np.zeros(int(0.4 * 16000), np.int16))
    talk = np.concatenate(parts)
    talk = talk[: 60 * 16000] if len(talk) > 60 * 16000 else talk
    assert len(talk) >= 55 * 16000, f"only {len(talk) / 16000:.0f} s of chatter"
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        ear = rig.daemon.microphone.add_consumer("test-ear", 5000)  # what the device hears
        mark = len(rig.seen)  # the daemon is idle (whether STARTING was seen is a race)
        player = rig.play(talk)
        end = time.monotonic() + len(talk) / 16000 + 3
        leds = set()
        while time.monotonic() < end:
            leds.add(rig.pins())
            await asyncio.sleep(0.05)
        assert player.poll() is not None  # all of it was played into the microphone
    heard = np.frombuffer(b"".join(ear.get_nowait().pcm for _ in range(len(ear))), np.int16)
    print(f"the microphone heard {loud_s(heard):.1f} s of speech of {loud_s(talk):.1f} s played")
    assert loud_s(heard) > 0.8 * loud_s(talk)  # the microphone heard the talk (not a dead input)
    assert {s.status.state for s in rig.seen[mark:]} <= {State.IDLE}
    assert leds == {DARK}
    assert simulator.connections == []
    assert Ledger(cfg.state_dir).records() == [] and not Ledger(cfg.state_dir).path.exists()
