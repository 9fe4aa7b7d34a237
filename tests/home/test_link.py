"""The home link against a real Mosquitto: three speakers arbitrate, the broker dies and comes back,
credentials. The appliance side is a small recorder of what the link posts (the whole daemon is in
test_home_assistant.py and test_three_speakers_e2e.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from device.app.states import AppEvent, State, Status
from device.config import MqttConfig
from device.events import WakeDetected
from device.home.link import CredentialsError, Home, read_credentials
from device.simulator.certs import ensure_certs
from device.timers.book import TimerBook
from tests.home.broker import Broker

pytestmark = pytest.mark.integration

LEVELS = {"kitchen": -24.0, "hall": -30.0, "bedroom": -36.0}


class Recorder:
    """Stands in for the appliance: records what the link posts; a wake word starts a 'conversation'."""

    def __init__(self, state_dir: Path) -> None:
        self.timers = TimerBook(state_dir)
        self.posted: list[AppEvent] = []
        self._status = Status(State.IDLE)
        self.volume = 50

    @property
    def status(self) -> Status:
        return self._status

    def post(self, event: AppEvent) -> None:
        self.posted.append(event)

    def get_volume(self) -> int:
        return self.volume

    def set_volume(self, level: int) -> None:
        self.volume = level

    def wakes(self) -> int:
        return sum(isinstance(e, WakeDetected) for e in self.posted)


def _cfg(broker: Broker, speaker: str, **extra: object) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=broker.port, speaker_id=speaker, **extra)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def speakers(
    broker: Broker, tmp_path: Path
) -> AsyncIterator[dict[str, tuple[Home, Recorder]]]:
    out: dict[str, tuple[Home, Recorder]] = {}
    tasks = []
    for name, level in LEVELS.items():
        rec = Recorder(tmp_path / name)
        home = Home(_cfg(broker, name), rec, level_of=lambda _ev, lv=level: lv)
        out[name] = (home, rec)
        tasks.append(asyncio.get_running_loop().create_task(home.run()))
    try:
        await until(lambda: all(h.connected for h, _ in out.values()), 10)
        await asyncio.sleep(0.2)  # subscriptions in place
        yield out
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(cond: Callable[[], bool], limit: float) -> None:
    """Poll cond() every 20 ms, bounded."""
    async with asyncio.timeout(limit):
        for _ in iter(cond, True):
            await asyncio.sleep(0.02)


async def one_wake(
    homes: dict[str, tuple[Home, Recorder]], loudest: str, rng: random.Random
) -> None:
    """Every speaker hears the same wake word; detections up to 100 ms apart, in any order."""
    levels = dict(LEVELS)
    names = sorted(levels, key=lambda n: n != loudest)
    for n, lv in zip(names, sorted(LEVELS.values(), reverse=True), strict=True):
        levels[n] = lv
    for name, (home, _) in homes.items():
        home._level_of = lambda _ev, lv=levels[name]: lv  # this trial's placement
    order = list(homes)
    rng.shuffle(order)
    for name in order:
        homes[name][0].on_wake(WakeDetected("hey_jarvis", 0.8, 16000))
        await asyncio.sleep(rng.uniform(0, 0.1) / len(order))
    await asyncio.sleep(0.4)


async def test_three_speakers_hear_one_wake_word_and_exactly_the_loudest_answers(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    with Broker(tmp_path / "broker") as broker:
        async with speakers(broker, tmp_path) as homes:
            for trial in range(6):
                loudest = list(LEVELS)[trial % 3]
                before = {n: r.wakes() for n, (_, r) in homes.items()}
                await one_wake(homes, loudest, rng)
                answered = [n for n, (_, r) in homes.items() if r.wakes() > before[n]]
                assert answered == [loudest], f"trial {trial}: {answered} answered"
                await asyncio.sleep(2.1)  # the winner's claim on this wake word lapses
            totals = {
                n: (h.stats.answered, h.stats.stood_back, h.stats.alone)
                for n, (h, _) in homes.items()
            }
            assert totals == {n: (2, 4, 0) for n in LEVELS}


async def test_a_speaker_in_a_conversation_keeps_the_wake_word(tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        async with speakers(broker, tmp_path) as homes:
            bedroom = homes["bedroom"][1]
            bedroom._status = Status(State.RESPONDING)  # the quietest is answering someone
            await one_wake(homes, "kitchen", random.Random(1))
            assert [n for n, (_, r) in homes.items() if r.wakes()] == ["bedroom"]


async def test_without_the_broker_every_speaker_answers_alone_and_arbitration_comes_back(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    with Broker(tmp_path / "broker") as broker:
        async with speakers(broker, tmp_path) as homes:
            broker.stop()
            await until(lambda: not any(h.connected for h, _ in homes.values()), 10)
            assert all("unreachable" in h.problem for h, _ in homes.values())
            await one_wake(homes, "kitchen", rng)
            assert {n: r.wakes() for n, (_, r) in homes.items()} == dict.fromkeys(LEVELS, 1)
            broker.start()
            await until(lambda: all(h.connected for h, _ in homes.values()), 15)
            await asyncio.sleep(0.3)
            await one_wake(homes, "hall", rng)
            assert {n: r.wakes() for n, (_, r) in homes.items()} == {
                "kitchen": 1,
                "hall": 2,
                "bedroom": 1,
            }


async def connects(cfg: MqttConfig, tmp_path: Path) -> tuple[bool, str]:
    """Run a home link until it is connected or has given a reason why not (then stop it):
    (connected, the problem)."""
    home = Home(cfg, Recorder(tmp_path / "k"), level_of=lambda _ev: -30.0)
    task = asyncio.get_running_loop().create_task(home.run())
    try:
        await until(lambda: home.connected or "unreachable" in home.problem, 10)
        if not home.connected:
            home.on_wake(WakeDetected("hey_jarvis", 0.8, 16000))  # answered all the same
            assert home.stats.alone == 1
        return home.connected, home.problem
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_credentials_from_a_file_and_a_refusal_that_says_why(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("anna:s3cret\n")
    bad.write_text("anna:wrong\n")
    with Broker(tmp_path / "broker", users={"anna": "s3cret"}) as broker:
        ok = await connects(_cfg(broker, "kitchen", credentials_file=str(good)), tmp_path)
        assert ok == (True, "")
        up, problem = await connects(_cfg(broker, "kitchen", credentials_file=str(bad)), tmp_path)
        assert not up and "authori" in problem.lower(), problem


def test_credential_files_that_cannot_be_used_are_named(tmp_path: Path) -> None:
    cfg = MqttConfig(host="h", credentials_file=str(tmp_path / "missing"))
    with pytest.raises(CredentialsError, match="no such file"):
        read_credentials(cfg, {})
    (tmp_path / "nocolon").write_text("justaname\n")
    cfg = MqttConfig(host="h", credentials_file=str(tmp_path / "nocolon"))
    with pytest.raises(CredentialsError, match="username:password"):
        read_credentials(cfg, {})
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "mqtt").write_text("svc:pw")
    assert read_credentials(cfg, {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}) == (
        "svc",
        "pw",
    )


# paho-mqtt drops the socket of a failed TLS handshake without closing it: the collector closes
# it (with a ResourceWarning) as soon as the attempt is over, so retries do not pile up fds.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_with_the_brokers_ca_and_a_clear_refusal_without_it(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path / "certs")
    with Broker(tmp_path / "broker", tls=(certs.ca, certs.cert, certs.key)) as broker:
        cfg = _cfg(broker, "kitchen", tls=True, ca_file=str(certs.ca))
        assert await connects(cfg, tmp_path) == (True, "")
        up, problem = await connects(cfg.model_copy(update={"ca_file": ""}), tmp_path)
        assert not up and "certificate" in problem.lower(), problem
