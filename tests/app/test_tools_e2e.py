"""A local tool called by the model over the real session: "turn it down" sets the volume."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.app.states import State
from device.audio.volume import VolumeStore
from device.simhw.pulse import VirtualSoundCard
from device.simulator import protocol
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_turn_it_down(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    ask = speech("Could you turn it down a bit?")
    simulator.register_utterance("turn it down", ask)
    cfg = sim_config(simulator, tmp_path)
    assert VolumeStore(cfg.state_dir, cfg.audio.volume).load() == 70
    async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
        await rig.ask_by_button(ask)
        mark = len(rig.seen)
        await rig.wait_state(State.LISTENING, 30, since=mark)
    declared = protocol.declared_tools(simulator.connections[0].setup)
    assert {"set_volume", "get_volume", "end_conversation", "mute"} <= declared
    responses = [
        r
        for f in simulator.connections[0].frames
        if (r := protocol.pick(f, "tool_response")) is not None
    ]
    assert responses, "no tool response reached the server"
    (fr,) = protocol.pick(responses[0], "function_responses")
    assert fr["name"] == "set_volume"
    assert fr["response"] == {"volume": 30, "previous": 70}
    assert VolumeStore(cfg.state_dir, cfg.audio.volume).load() == 30  # applied and persisted
