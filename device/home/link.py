"""The speaker's connection to the home's MQTT broker (aiomqtt): wake arbitration, its state for
Home Assistant, and Home Assistant's commands.

    home = Home(cfg.mqtt, appliance, level_of=..., environ=None)
    appliance.add_listener(home.on_status)
    detector.run(None, home.on_wake, appliance.post)   # wake words pass through the arbitration
    task = tg.create_task(home.run())                  # connects, and reconnects with backoff

Nothing waits on the broker beyond the arbitration window: while it is unreachable every wake
word is answered at once (the speaker works alone), and the journal and `doctor` say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiomqtt

from device.app.states import BUSY_STATES, MUTED_STATES, AppEvent, State, Status
from device.config import MqttConfig
from device.events import ButtonHeld, ButtonReleased, WakeDetected
from device.home import topics
from device.home.arbitration import Arbitration, Claim
from device.timers.book import TimerBook

log = logging.getLogger(__name__)

STATE_REFRESH_S = 5.0
"""The state is compared (volume or timers changed by voice) and republished this often at most."""
CONNECT_TIMEOUT_S = 5.0


class Controlled(Protocol):
    """What the home link reads and drives: the appliance."""

    timers: TimerBook

    @property
    def status(self) -> Status: ...

    def post(self, event: AppEvent) -> None: ...

    def get_volume(self) -> int: ...

    def set_volume(self, level: int) -> None: ...


class CredentialsError(ValueError):
    """The broker credentials cannot be read."""


def read_credentials(
    cfg: MqttConfig, environ: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """(username, password) from the systemd credential `mqtt` or `credentials_file`
    ('username:password' on one line); None when neither is configured."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    candidates = [Path(cred_dir) / "mqtt"] if cred_dir else []
    if cfg.credentials_file:
        candidates.append(Path(cfg.credentials_file))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if path == Path(cfg.credentials_file):
                raise CredentialsError(f"mqtt.credentials_file {path}: no such file") from None
            continue
        except OSError as exc:
            raise CredentialsError(f"mqtt credentials {path}: {exc.strerror}") from None
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise CredentialsError(f"mqtt credentials {path}: expected 'username:password'")
        return user, password
    return None


def client_for(
    cfg: MqttConfig, identifier: str, will: aiomqtt.Will | None, environ: dict[str, str] | None
) -> aiomqtt.Client:
    """An (unconnected) client for the configured broker: credentials, TLS, timeouts."""
    creds = read_credentials(cfg, environ)
    tls = ssl.create_default_context(cafile=cfg.ca_file or None) if cfg.tls else None
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=creds[0] if creds else None,
        password=creds[1] if creds else None,
        identifier=identifier,
        will=will,
        tls_context=tls,
        timeout=CONNECT_TIMEOUT_S,
        keepalive=30,
    )


class Home:
    """Connection, arbitration and Home Assistant for one speaker."""

    def __init__(
        self,
        cfg: MqttConfig,
        appliance: Controlled,
        *,
        level_of: Callable[[WakeDetected], float],
        environ: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = topics.Topics(
            cfg.topic_prefix, topics.speaker_id(cfg.speaker_id), cfg.discovery_prefix
        )
        self.arbitration = Arbitration(self.topics.speaker, cfg.arbitration_ms / 1000)
        self._appliance = appliance
        self._level_of = level_of
        self._environ = environ
        self._client: aiomqtt.Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_changed = asyncio.Event()
        self._last_error = ""
        self.connected = False
        self.problem = "not connected yet"
        """Why the broker is not connected (for doctor and the journal); "" when it is."""
        self.stats = topics.WakeStats()
        """What became of the wake words heard here (published in the state)."""

    # --- from the appliance and the detector (loop thread) -----------------------------------

    def on_status(self, status: Status) -> None:
        if status.error is not None:
            self._last_error = status.error.value
        self._state_changed.set()

    def on_wake(self, ev: WakeDetected) -> None:
        """A wake word heard here: answer it, or leave it to a better placed speaker."""
        busy = self._appliance.status.state in BUSY_STATES
        client = self._client
        if client is None or not self.connected or self.arbitration.window_s <= 0:
            self.stats.alone += 1
            self._state_changed.set()
            self._appliance.post(ev)
            return
        mine = Claim(self.topics.speaker, self._level_of(ev), ev.score, busy)
        task = asyncio.get_running_loop().create_task(self._arbitrate(client, ev, mine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _arbitrate(self, client: aiomqtt.Client, ev: WakeDetected, mine: Claim) -> None:
        loop = asyncio.get_running_loop()
        claimed_at = loop.time()
        try:
            await client.publish(self.topics.wake, mine.to_json(), qos=0)
        except aiomqtt.MqttError as exc:
            log.warning("wake claim not sent (%s): answering alone", exc)
            self.stats.alone += 1
            self._state_changed.set()
            self._appliance.post(ev)
            return
        if not mine.busy:
            await asyncio.sleep(self.arbitration.window_s)
        best = self.arbitration.decide(mine, claimed_at, loop.time())
        if best.speaker != self.topics.speaker:
            self.stats.stood_back += 1
            self._state_changed.set()
            log.info(
                "wake word heard here too (%.0f dB, score %.2f): %s answers (%s)",
                mine.level_db,
                mine.score,
                best.speaker,
                "in a conversation" if best.busy else f"{best.level_db:.0f} dB",
            )
            return
        self.stats.answered += 1
        self._state_changed.set()
        self._appliance.post(ev)
        if mine.busy:
            return
        # From now on this wake word (and the conversation) is ours: a speaker that hears it late
        # yields to this claim.
        waited_ms = (loop.time() - claimed_at) * 1000
        self.stats.arbitration_ms.append(waited_ms)
        log.info(
            "wake word: this speaker answers (%.0f dB, score %.2f, %.0f ms of arbitration)",
            mine.level_db,
            mine.score,
            waited_ms,
        )
        owner = Claim(mine.speaker, mine.level_db, mine.score, busy=True)
        try:
            await client.publish(self.topics.wake, owner.to_json(), qos=0)
        except aiomqtt.MqttError as exc:
            log.warning("wake claim not sent (%s)", exc)

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled: reconnect with backoff (1 s doubling to the limit)."""
        delay = 1.0
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._session()
                except (aiomqtt.MqttError, OSError, CredentialsError) as exc:
                    if time.monotonic() - started > 60:
                        delay = 1.0  # it was up for a while: a fresh failure, retry soon
                    first = self.connected or self.problem == "not connected yet"
                    self.problem = f"broker {self.cfg.host}:{self.cfg.port} unreachable: {exc}"
                    (log.warning if first else log.debug)(
                        "%s; wake words are answered here alone, retrying in %.0f s",
                        self.problem,
                        delay,
                    )
                finally:
                    self._client, self.connected = None, False
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.cfg.reconnect_max_s)
        finally:
            for task in list(self._tasks):  # wake words still in their window: the daemon stops
                task.cancel()

    async def _session(self) -> None:
        t = self.topics
        will = aiomqtt.Will(t.availability, topics.OFFLINE, qos=1, retain=True)
        async with client_for(self.cfg, f"livespeaker-{t.speaker}", will, self._environ) as client:
            await client.subscribe(t.wake, qos=0)
            await client.subscribe(t.commands, qos=1)
            await client.publish(t.availability, topics.ONLINE, qos=1, retain=True)
            if self.cfg.discovery_prefix:
                for topic, payload in topics.discovery(t).items():
                    await client.publish(topic, _json(payload), qos=1, retain=True)
            self._client, self.connected, self.problem = client, True, ""
            log.info(
                "connected to the MQTT broker %s:%d as %s", self.cfg.host, self.cfg.port, t.speaker
            )
            # The publisher ends by itself when the connection fails; the reader raises then.
            publisher = asyncio.get_running_loop().create_task(
                self._publish_state(client), name="mqtt-state"
            )
            try:
                async for message in client.messages:
                    self._on_message(str(message.topic), message.payload)
            except asyncio.CancelledError:
                self.connected = False
                await asyncio.shield(self._goodbye(client))
                raise
            finally:
                publisher.cancel()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """A clean stop: Home Assistant shows the speaker unavailable at once (no will needed)."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(
                client.publish(self.topics.availability, topics.OFFLINE, qos=1, retain=True), 1.0
            )

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        last = b""
        while True:
            payload = self.state().to_json()
            if payload != last:
                try:
                    await client.publish(self.topics.state, payload, qos=1, retain=True)
                except aiomqtt.MqttError:
                    return  # the connection is gone: the reader reconnects
                last = payload
            self._state_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_changed.wait(), STATE_REFRESH_S)

    def state(self) -> topics.SpeakerState:
        """What the state topic says now."""
        a = self._appliance
        status = a.status
        pending = a.timers.pending()  # soonest first
        return topics.SpeakerState(
            state=status.state,
            muted=status.state in MUTED_STATES,
            volume=a.get_volume(),
            error=status.error.value if status.error else self._last_error,
            timers=len(pending),
            next_timer=pending[0].name if pending else "",
            wake_words=self.stats.to_dict(),
        )

    # --- messages -----------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: object) -> None:
        text = (
            payload.decode(errors="replace")
            if isinstance(payload, bytes | bytearray)
            else str(payload)
        )
        if topic == self.topics.wake:
            try:
                self.arbitration.heard(Claim.from_json(text), asyncio.get_running_loop().time())
            except ValueError as exc:
                log.warning("ignored on %s: %s", topic, exc)
            return
        name = topic.rsplit("/", 1)[-1]
        try:
            self._command(name, text.strip())
        except ValueError as exc:
            log.warning("Home Assistant command ignored: %s", exc)

    def _command(self, name: str, value: str) -> None:
        a = self._appliance
        state = a.status.state
        if name == "mute":
            if value not in (topics.ON, topics.OFF):
                raise ValueError(f"mute {value!r}: expected {topics.ON} or {topics.OFF}")
            muted = state in MUTED_STATES
            if (value == topics.ON) != muted:
                log.info("Home Assistant: %s", "mute" if value == topics.ON else "unmute")
                a.post(ButtonHeld())  # as a long press of the button
        elif name == "volume":
            try:
                level = round(float(value))
            except ValueError:
                raise ValueError(f"volume {value!r}: expected a number 0-100") from None
            if not 0 <= level <= 100:
                raise ValueError(f"volume {value!r}: expected a number 0-100")
            log.info("Home Assistant: volume %d", level)
            a.set_volume(level)
            self._state_changed.set()
        elif name == "start":
            if value != topics.PRESS:
                raise ValueError(f"start {value!r}: expected {topics.PRESS}")
            if state in (State.IDLE, State.ERROR):
                log.info("Home Assistant: start a conversation")
                a.post(ButtonReleased())  # as a short press
            else:
                log.info("Home Assistant: start ignored (%s)", state.value)
        else:
            raise ValueError(f"unknown command {name!r}")


def _json(payload: dict[str, object]) -> bytes:
    return json.dumps(payload).encode()
