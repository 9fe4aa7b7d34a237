"""Home Assistant and the real daemon through a real Mosquitto: discovery payloads checked against
Home Assistant's documented MQTT discovery schema, state and availability, and commands published
as Home Assistant publishes them acting like the button (mute), the volume slider and a start."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from device.app.states import State
from device.home import topics
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.conftest import SIM_API_KEY, sim_config
from tests.home.broker import Broker

# Home Assistant's MQTT platforms, the options each accepts in a discovery payload (those this
# project uses and their documented neighbours) and the ones it requires, from
# https://www.home-assistant.io/integrations/{sensor,switch,number,button}.mqtt/ and the entity
# options common to all (availability, device, entity_category, icon, json_attributes_*, name,
# unique_id, ...): https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
COMMON = {
    "availability_topic", "payload_available", "payload_not_available", "availability_mode",
    "availability_template", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "default_entity_id", "qos", "unique_id", "origin",
}  # fmt: skip
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {
    "sensor": ({"state_topic"}, {"device_class", "expire_after", "force_update",
                "last_reset_value_template", "options", "state_class", "suggested_display_precision",
                "unit_of_measurement", "value_template"}),
    "switch": (set(), {"command_topic", "command_template", "device_class", "optimistic",
               "payload_off", "payload_on", "retain", "state_off", "state_on", "state_topic",
               "value_template"}),
    "number": ({"command_topic"}, {"command_template", "device_class", "max", "min", "mode",
               "optimistic", "payload_reset", "retain", "state_topic", "step",
               "unit_of_measurement", "value_template"}),
    "button": ({"command_topic"}, {"command_template", "device_class", "payload_press", "retain"}),
}  # fmt: skip
DEVICE_KEYS = {"identifiers", "connections", "configuration_url", "hw_version", "manufacturer",
               "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
               "via_device"}  # fmt: skip
ENTITY_CATEGORIES = {"config", "diagnostic"}
NUMBER_MODES = {"auto", "box", "slider"}
SENSOR_STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
DISCOVERY_TOPIC = re.compile(r"^homeassistant/(\w+)/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)/config$")


def check_discovery(topic: str, payload: dict[str, Any], speaker: str) -> str:
    """Validate one discovery message like Home Assistant would; returns its platform."""
    m = DISCOVERY_TOPIC.match(topic)
    assert m, f"{topic}: not <prefix>/<component>/<node_id>/<object_id>/config"
    platform, node = m.group(1), m.group(2)
    assert node == speaker
    required, own = PLATFORMS[platform]
    unknown = set(payload) - COMMON - own - required
    assert not unknown, f"{topic}: options Home Assistant does not accept: {unknown}"
    assert required <= set(payload), f"{topic}: missing {required - set(payload)}"
    for key, value in payload.items():
        if key.endswith("_topic"):
            assert isinstance(value, str) and value and not set("+#") & set(value), (topic, key)
    assert set(payload["device"]) <= DEVICE_KEYS and payload["device"]["identifiers"]
    assert payload.get("entity_category", "diagnostic") in ENTITY_CATEGORIES
    if platform == "number":
        assert payload["min"] < payload["max"] and payload["step"] > 0
        assert payload.get("mode", "auto") in NUMBER_MODES
    if platform == "sensor":
        assert payload.get("state_class", "measurement") in SENSOR_STATE_CLASSES
        if payload.get("device_class") == "enum":
            assert payload["options"] and "unit_of_measurement" not in payload
    return platform


def test_discovery_payloads_follow_home_assistants_schema() -> None:
    t = topics.Topics("livespeaker", "kitchen", "homeassistant")
    found = {topic: check_discovery(topic, payload, "kitchen")
             for topic, payload in topics.discovery(t).items()}  # fmt: skip
    assert sorted(found.values()) == ["button", "number", "sensor", "sensor", "sensor", "switch"]
    ids = [p["unique_id"] for p in topics.discovery(t).values()]
    assert len(set(ids)) == len(ids)
    # Every template reads a field the state payload has.
    state = json.loads(topics.SpeakerState(State.IDLE, False, 70, "", 0, "").to_json())
    for payload in topics.discovery(t).values():
        for key in ("value_template", "json_attributes_template"):
            for name in re.findall(r"value_json\.(\w+)", payload.get(key, "")):
                assert name in state, f"{key} reads {name}, which the state does not have"


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_home_assistant_sees_the_speaker_and_its_commands_act_on_the_daemon(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, tmp_path: Path
) -> None:
    with Broker(tmp_path / "broker") as broker:
        cfg = sim_config(simulator, tmp_path)
        mqtt = cfg.mqtt.model_copy(
            update={"host": "127.0.0.1", "port": broker.port, "speaker_id": "kitchen"}
        )
        cfg = cfg.model_copy(update={"mqtt": mqtt})
        t = topics.Topics("livespeaker", "kitchen", "homeassistant")
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="home-assistant") as ha:
            await ha.subscribe("homeassistant/#")
            await ha.subscribe("livespeaker/kitchen/#")
            seen: dict[str, Any] = {}

            async def read() -> None:
                async for m in ha.messages:
                    assert isinstance(m.payload, bytes)
                    text = m.payload.decode()
                    seen[str(m.topic)] = json.loads(text) if text.startswith("{") else text

            async def until(cond: Callable[[], bool], within: float = 10.0) -> None:
                async with asyncio.timeout(within):
                    for _ in iter(cond, True):
                        await asyncio.sleep(0.02)

            reader = asyncio.create_task(read())
            try:
                async with running_daemon(cfg, sound_card, simulator, SIM_API_KEY) as rig:
                    await until(lambda: seen.get(t.availability) == topics.ONLINE)
                    await until(lambda: len([k for k in seen if k.endswith("/config")]) == 6)
                    for topic, payload in seen.items():
                        if topic.endswith("/config"):
                            check_discovery(topic, payload, "kitchen")
                    await until(lambda: seen.get(t.state, {}).get("state") == "idle")

                    await ha.publish(t.command("volume"), "30.0")  # as the number entity sends it
                    await until(lambda: seen[t.state]["volume"] == 30)
                    assert rig.appliance.get_volume() == 30

                    await ha.publish(t.command("mute"), "ON")  # like holding the button
                    await rig.wait_state(State.MUTED, 10)
                    await until(lambda: seen[t.state]["muted"] is True)
                    await ha.publish(t.command("mute"), "ON")  # already muted: nothing toggles
                    await ha.publish(t.command("mute"), "OFF")
                    mark = len(rig.seen)
                    await rig.wait_state(State.IDLE, 10)
                    await asyncio.sleep(0.5)
                    assert [s.status.state for s in rig.seen[mark:]] == [State.IDLE]

                    await ha.publish(t.command("volume"), "loud")  # refused, nothing changes
                    await ha.publish(t.command("start"), "PRESS")  # like a short press
                    await rig.wait_state(State.LISTENING, 15)
                    await until(lambda: seen[t.state]["state"] == "listening")
                    assert rig.appliance.get_volume() == 30
                # a clean stop says offline at once (the last will covers a crash)
                await until(lambda: seen.get(t.availability) == topics.OFFLINE)
            finally:
                reader.cancel()
