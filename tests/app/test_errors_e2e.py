"""Every error kind: its LED pattern and earcon, then idle again, and a later wake-up works."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from device.app.states import State
from device.events import ErrorKind
from device.leds import ERROR_PATTERNS
from device.simhw.pulse import SpeakerRecording, VirtualSoundCard
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.app.harness import Rig, running_daemon
from tests.app.test_conversation_e2e import LISTENING_RGB, earcon_48k
from tests.conftest import SpeechFactory, sim_config
from tests.simhw.test_rig import best_correlation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
KEY = "key-issued-later"


def pactl(card: VirtualSoundCard, *args: str) -> str:
    """Run pactl against the virtual card."""
    return subprocess.run(
        ["pactl", *args], env=card.env, capture_output=True, text=True, check=True
    ).stdout


def unplug_mic(card: VirtualSoundCard) -> None:
    """Silence the microphone source: the daemon's stream stalls, like a dead USB microphone."""
    pactl(card, "suspend-source", "mic", "1")


def plug_mic(card: VirtualSoundCard) -> None:
    """The microphone delivers again."""
    pactl(card, "suspend-source", "mic", "0")


@contextlib.contextmanager
def resumed_mic(card: VirtualSoundCard) -> Iterator[None]:
    """Whatever happens, leave the session's sound card with a working microphone."""
    try:
        yield
    finally:
        plug_mic(card)


Step = Callable[[], Awaitable[None]]


async def nothing() -> None:
    """No fix needed."""


async def check_error(
    rig: Rig, rec: SpeakerRecording, kind: ErrorKind, cause: Step, fix: Step = nothing
) -> None:
    """Cause one failure; the LEDs and earcon show its kind; then idle; then a wake-up works."""
    mark = len(rig.seen)
    before = len(rec.snapshot())
    await cause()
    err = await rig.wait_state(State.ERROR, 20, since=mark)
    assert err.status.error is kind
    # The LEDs blink in the kind's colour (a blink starts lit) ...
    assert err.pins == ERROR_PATTERNS[kind].colour
    await fix()
    await rig.wait_state(State.IDLE, 20, since=mark + 1)
    await asyncio.sleep(0.8)
    played = rec.snapshot()[before:]
    assert best_correlation(earcon_48k(kind), played) > 0.8  # ... and its sound played
    # A wake-up works again (the button: quick and deterministic).
    mark = len(rig.seen)
    await asyncio.to_thread(rig.press)
    listening = await rig.wait_state(State.LISTENING, 20, since=mark)
    assert listening.pins == LISTENING_RGB
    mark = len(rig.seen)
    await asyncio.to_thread(rig.press)
    await rig.wait_state(State.IDLE, 10, since=mark)


async def test_each_error_kind_shows_then_recovers(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    cfg = sim_config(simulator, tmp_path, retry_max_s=2.0, quota_backoff_s=2.0)
    keys = simulator.api_keys
    assert keys is not None and KEY not in keys
    model = cfg.live.model
    async with running_daemon(cfg, sound_card, simulator, KEY) as rig:

        async def press() -> None:
            await asyncio.to_thread(rig.press)

        async def press_twice() -> None:
            # A rejected key is remembered: a second wake-up answers with the error at once,
            # without dialling the service again.
            mark = len(rig.seen)
            await press()
            await rig.wait_state(State.ERROR, 20, since=mark)
            dialled = len(simulator.connections)
            mark = len(rig.seen)
            await press()
            again = await rig.wait_state(State.ERROR, 5, since=mark)
            assert again.status.error is ErrorKind.BAD_KEY
            assert len(simulator.connections) == dialled

        async def issue_key() -> None:
            keys.add(KEY)

        async def drop_model() -> None:
            simulator.models.discard(model)
            await press()

        async def restore_model() -> None:
            simulator.models.add(model)

        def fault(action: FaultAction) -> Step:
            async def cause() -> None:
                simulator.inject(Fault(action, When.SETUP))
                await press()

            return cause

        async def unplug() -> None:
            unplug_mic(sound_card)

        async def plug_back() -> None:
            plug_mic(sound_card)

        with sound_card.record_speaker(48000) as rec, resumed_mic(sound_card):
            rec.wait_until_flowing()
            await check_error(rig, rec, ErrorKind.BAD_KEY, press_twice, issue_key)
            await check_error(rig, rec, ErrorKind.CONFIG, drop_model, restore_model)
            await check_error(rig, rec, ErrorKind.QUOTA, fault(FaultAction.CLOSE_QUOTA))
            await check_error(rig, rec, ErrorKind.SERVER, fault(FaultAction.CLOSE_INTERNAL))
            await check_error(rig, rec, ErrorKind.NO_NETWORK, fault(FaultAction.DROP))
            await check_error(rig, rec, ErrorKind.AUDIO_DEVICE, unplug, plug_back)
        # And the wake word still works after all that.
        mark = len(rig.seen)
        rig.play(speech("Hey Jarvis, what is the capital of France?"))
        await rig.wait_state(State.LISTENING, 30, since=mark)
