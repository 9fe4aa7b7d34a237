"""A server that goes silent (socket open): the speaker says so and every later wake-up is served.

Real daemon, real PortAudio on the virtual card, real SDK against the simulator's `stall` fault.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from device.app.states import State
from device.events import ErrorKind
from device.simhw.pulse import VirtualSoundCard
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.app.harness import Rig, running_daemon
from tests.app.test_conversation_e2e import earcon_48k
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.simhw.test_rig import best_correlation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def until(cond: object, within: float, what: str) -> None:
    """Poll cond() (bounded)."""
    deadline = time.monotonic() + within
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def press(rig: Rig) -> int:
    """Press the button; returns the index of the next state change."""
    mark = len(rig.seen)
    await asyncio.to_thread(rig.press)
    return mark


async def served(rig: Rig, within: float) -> float:
    """A press is answered with listening (or an error); then end that conversation. Seconds."""
    t0 = time.monotonic()
    mark = await press(rig)
    deadline = time.monotonic() + within
    while not any(s.status.state in (State.LISTENING, State.ERROR) for s in rig.seen[mark:]):
        assert time.monotonic() < deadline, f"wake-up not served: {rig.states()[-4:]}"
        await asyncio.sleep(0.02)
    took = time.monotonic() - t0
    assert rig.state is State.LISTENING, f"answered with {rig.status.error}"
    mark = await press(rig)
    await rig.wait_state(State.IDLE, 10, since=mark)
    return took


async def test_a_wake_up_while_the_last_conversation_cannot_close_is_served(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, tmp_path: Path
) -> None:
    """Frozen network as a conversation ends: its close handshake hangs; the next press works."""
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        mark = await press(rig)
        await rig.wait_state(State.LISTENING, 20, since=mark)
        simulator.inject(Fault(FaultAction.STALL, When.AFTER_S, after_s=0.0))
        stalled = simulator.connections[-1]
        await until(lambda: "stall" in stalled.sent, 10, "the connection did not stall")
        mark = await press(rig)  # end the conversation: its close cannot complete
        await rig.wait_state(State.IDLE, 10, since=mark)
        took = await served(rig, 15)  # at once: while the old one is still closing
        print(f"wake-up during a stuck close: listening after {took:.2f} s")
        assert len(simulator.connections) == 2
        # And later wake-ups too.
        await served(rig, 15)


async def test_a_dead_link_mid_answer_is_no_network_and_the_next_wake_up_works(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    story = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", story)
    simulator.realtime_factor = 4.0
    cfg = sim_config(simulator, tmp_path)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        simulator.inject(Fault(FaultAction.STALL, When.MID_REPLY, after_chunks=3))
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            answering = await rig.ask_by_button(story)
            before = len(rec.snapshot())
            err = await rig.wait_state(State.ERROR, 40, since=rig.seen.index(answering))
            noticed = err.at - answering.at
            print(f"dead link mid-answer: error shown {noticed:.1f} s after the answer started")
            assert err.status.error is ErrorKind.NO_NETWORK
            assert noticed < 15.0  # 8 s of silence past the 0.3 s of audio, room for load
            await rig.wait_state(State.IDLE, 10, since=rig.seen.index(err))
            await asyncio.sleep(0.5)
            played = rec.snapshot()[before:]
        assert best_correlation(earcon_48k(ErrorKind.NO_NETWORK), played) > 0.8
        took = await served(rig, 15)
        print(f"next wake-up after the dead link: listening after {took:.2f} s")


async def test_a_wake_up_while_the_network_is_still_frozen_gets_the_error_sound_in_time(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, tmp_path: Path
) -> None:
    """The conversation ends on a frozen link, and the next connection gets no answer either:
    the wake-up is answered with the no-network sound within the connect timeout."""
    cfg = sim_config(simulator, tmp_path, connect_timeout_s=4.0)
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        mark = await press(rig)
        await rig.wait_state(State.LISTENING, 20, since=mark)
        simulator.inject(Fault(FaultAction.STALL, When.AFTER_S, after_s=0.0))
        stalled = simulator.connections[-1]
        await until(lambda: "stall" in stalled.sent, 10, "the connection did not stall")
        simulator.inject(Fault(FaultAction.SLOW_SETUP, When.SETUP, after_s=60.0))
        mark = await press(rig)
        await rig.wait_state(State.IDLE, 10, since=mark)
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            before = len(rec.snapshot())
            t0 = time.monotonic()
            mark = await press(rig)
            err = await rig.wait_state(State.ERROR, 20, since=mark)
            took = err.at - t0
            print(f"wake-up on a frozen network: error after {took:.2f} s (connect timeout 4 s)")
            assert err.status.error is ErrorKind.NO_NETWORK
            assert took < 4.0 + 1.5 + 3.0  # the end's wait, the timeout, room for load
            await rig.wait_state(State.IDLE, 10, since=rig.seen.index(err))
            await asyncio.sleep(0.5)
            played = rec.snapshot()[before:]
        assert best_correlation(earcon_48k(ErrorKind.NO_NETWORK), played) > 0.8
        await served(rig, 15)  # the network is back
