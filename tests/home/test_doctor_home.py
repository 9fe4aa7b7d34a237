"""doctor's `home` check against a real Mosquitto: skipped alone, lists the other speakers online,
warns when the broker is unreachable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from device.config import Config, MqttConfig
from device.doctor import home
from device.doctor.context import DoctorContext
from device.doctor.result import CheckStatus
from tests.home.broker import Broker

pytestmark = pytest.mark.integration


def _ctx(mqtt: MqttConfig) -> DoctorContext:
    return DoctorContext(Config(mqtt=mqtt))


async def _announce(port: int, speaker: str, payload: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.publish(f"livespeaker/{speaker}/availability", payload, qos=1, retain=True)


def test_the_home_check_lists_the_other_speakers_and_warns_without_a_broker(tmp_path: Path) -> None:
    assert home.check(_ctx(MqttConfig())).status is CheckStatus.SKIP
    with Broker(tmp_path / "broker") as broker:
        asyncio.run(_announce(broker.port, "hall", "online"))
        asyncio.run(_announce(broker.port, "attic", "offline"))
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, speaker_id="kitchen")
        result = home.check(_ctx(cfg))
        assert result.status is CheckStatus.PASS, result.detail
        assert result.numbers["other_speakers_online"] == ["hall"]
        assert "as kitchen" in result.detail
    result = home.check(_ctx(cfg))  # the broker is gone
    assert result.status is CheckStatus.WARN
    assert "unreachable" in result.detail and "answers every wake word alone" in result.detail
    missing = cfg.model_copy(update={"credentials_file": str(tmp_path / "nope")})
    result = home.check(_ctx(missing))
    assert result.status is CheckStatus.FAIL and "no such file" in result.detail
