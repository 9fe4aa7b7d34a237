"""The speaker's MQTT topics, its state payload and Home Assistant's discovery payloads (pure).

    PREFIX/wake                       wake claims of every speaker (device.home.arbitration)
    PREFIX/SPEAKER/availability       "online" / "offline" (retained; the broker's last will)
    PREFIX/SPEAKER/state              JSON state (retained): state, muted, volume, error, timers
    PREFIX/SPEAKER/set/mute           "ON" / "OFF"      (Home Assistant's switch)
    PREFIX/SPEAKER/set/volume         "0".."100"        (number)
    PREFIX/SPEAKER/set/start          "PRESS"           (button: start a conversation)
    DISCOVERY/COMPONENT/SPEAKER/OBJECT/config           one per entity, retained

Home Assistant's MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery)
then shows each speaker as one device with its state, mute switch, volume, a start button, the
last error and its timers; availability follows the broker's last will.
"""

from __future__ import annotations

import json
import re
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from device import __version__
from device.app.states import State

ONLINE, OFFLINE = "online", "offline"
ON, OFF, PRESS = "ON", "OFF", "PRESS"


def speaker_id(configured: str) -> str:
    """The configured id (the config allows only a topic level), or the host name made one."""
    if configured:
        return configured
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64] or "livespeaker"


@dataclass(frozen=True)
class Topics:
    """Every topic of one speaker."""

    prefix: str
    speaker: str
    discovery: str

    @property
    def wake(self) -> str:
        return f"{self.prefix}/wake"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.speaker}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    def command(self, name: str) -> str:
        return f"{self.base}/set/{name}"

    @property
    def commands(self) -> str:
        """Subscription for every command."""
        return f"{self.base}/set/+"

    def config(self, component: str, obj: str) -> str:
        return f"{self.discovery}/{component}/{self.speaker}/{obj}/config"


@dataclass
class WakeStats:
    """What became of the wake words this speaker heard since it started."""

    answered: int = 0
    """Won the arbitration (or owned the conversation) and answered."""
    stood_back: int = 0
    """Left to a better placed speaker."""
    alone: int = 0
    """Answered without arbitration: the broker was unreachable (or arbitration_ms = 0)."""
    arbitration_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """How long the latest wins waited for the other speakers (publish to decision)."""

    def to_dict(self) -> dict[str, float | int | None]:
        ms = sorted(self.arbitration_ms)
        return {
            "answered": self.answered,
            "stood_back": self.stood_back,
            "alone": self.alone,
            "arbitration_ms_median": round(ms[len(ms) // 2], 1) if ms else None,
            "arbitration_ms_max": round(ms[-1], 1) if ms else None,
        }


@dataclass(frozen=True)
class SpeakerState:
    """What Home Assistant shows (published retained on every change)."""

    state: State
    muted: bool
    volume: int
    error: str
    timers: int
    next_timer: str
    wake_words: dict[str, float | int | None] = field(default_factory=dict)
    """WakeStats.to_dict()."""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "state": self.state.value,
                "muted": self.muted,
                "volume": self.volume,
                "error": self.error,
                "timers": self.timers,
                "next_timer": self.next_timer,
                "wake_words": self.wake_words,
            }
        ).encode()


def discovery(t: Topics) -> dict[str, dict[str, Any]]:
    """Discovery config topic -> payload, for every entity of the speaker."""
    device = {
        "identifiers": [f"livespeaker_{t.speaker}"],
        "name": f"livespeaker {t.speaker}",
        "manufacturer": "livespeaker",
        "model": "livespeaker (Gemini Live)",
        "sw_version": __version__,
    }

    def entity(obj: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"livespeaker_{t.speaker}_{obj}",
            "availability_topic": t.availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
            **extra,
        }

    return {
        t.config("sensor", "state"): entity(
            "state",
            "State",
            state_topic=t.state,
            value_template="{{ value_json.state }}",
            device_class="enum",
            options=[s.value for s in State],
            icon="mdi:account-voice",
        ),
        t.config("switch", "mute"): entity(
            "mute",
            "Microphone muted",
            command_topic=t.command("mute"),
            state_topic=t.state,
            value_template="{{ 'ON' if value_json.muted else 'OFF' }}",
            payload_on=ON,
            payload_off=OFF,
            icon="mdi:microphone-off",
        ),
        t.config("number", "volume"): entity(
            "volume",
            "Volume",
            command_topic=t.command("volume"),
            state_topic=t.state,
            value_template="{{ value_json.volume }}",
            min=0,
            max=100,
            step=1,
            mode="slider",
            unit_of_measurement="%",
            icon="mdi:volume-high",
        ),
        t.config("button", "start"): entity(
            "start",
            "Start conversation",
            command_topic=t.command("start"),
            payload_press=PRESS,
            icon="mdi:account-voice",
        ),
        t.config("sensor", "error"): entity(
            "error",
            "Last error",
            state_topic=t.state,
            value_template="{{ value_json.error }}",
            entity_category="diagnostic",
            icon="mdi:alert-circle-outline",
        ),
        t.config("sensor", "timers"): entity(
            "timers",
            "Timers and alarms",
            state_topic=t.state,
            value_template="{{ value_json.timers }}",
            json_attributes_topic=t.state,
            json_attributes_template="{{ {'next': value_json.next_timer} | tojson }}",
            state_class="measurement",
            icon="mdi:timer-outline",
        ),
    }
