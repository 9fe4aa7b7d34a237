"""The daemon's lifecycle in-process on the rig: SIGTERM mid-answer, SIGHUP reload (good and bad)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from device.app.states import State
from device.config import config_to_toml
from device.live.handles import HandleStore
from device.service import Notifier
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.app.test_conversation_e2e import DARK
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.service.notify_socket import NotifySocket

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def test_sigterm_mid_answer_stops_gracefully(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story = speech("Please tell me a story.")
    simulator.register_utterance("tell me a story", story)
    cfg = sim_config(simulator, tmp_path)
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg, sound_card, simulator, SIM_API_KEY, notifier=Notifier()
        ) as rig:
            ready = await ns.until(lambda m: any("READY" in x.fields for x in m), 30, "READY")
            assert [m.fields.get("STATUS") for m in ready if "READY" in m.fields] == [
                "Listening for 'hey jarvis'"
            ]
            # READY means audio flows: a press right away gets its chime played at once.
            assert rig.daemon.audio_flowing()
            await rig.ask_by_button(story)
            await ns.until(lambda m: any(x.fields.get("STATUS") == "Answering" for x in m), 10)
            t0 = time.monotonic()
            rig.daemon.request(signal.SIGTERM)
            task = next(t for t in asyncio.all_tasks() if t.get_name() == "daemon")
            assert await asyncio.wait_for(task, 10) == 0
            took = time.monotonic() - t0
            print(f"stopped {took:.2f} s after SIGTERM")
            assert ns.with_key("STOPPING", "1")
            assert rig.pins() == DARK  # LEDs off
            assert simulator.connections[0].close_code is not None  # the session was closed
            assert HandleStore(cfg.state_dir).load() is not None  # and its handle kept
            assert took < 2.0


async def test_sighup_reloads_a_good_config_and_keeps_a_bad_one_out(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = sim_config(simulator, tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg, sound_card, simulator, SIM_API_KEY, notifier=Notifier(), config_path=str(path)
        ) as rig:
            await ns.until(lambda m: any("READY" in x.fields for x in m), 30, "READY")
            first = rig.daemon.appliance
            # A broken file: logged, the running configuration stays, nothing is restarted.
            path.write_text(config_to_toml(cfg) + "\n[leds]\nmood = 1\n")
            rig.daemon.request(signal.SIGHUP)
            await asyncio.sleep(1.0)
            assert not ns.with_key("RELOADING")
            assert rig.daemon.appliance is first and first.state is State.IDLE
            # A good one: RELOADING=1, everything rebuilt with it, READY=1 again.
            new = cfg.model_copy(
                update={"conversation": cfg.conversation.model_copy(update={"follow_up_s": 1.0})}
            )
            path.write_text(config_to_toml(new))
            rig.daemon.request(signal.SIGHUP)
            msgs = await ns.until(
                lambda m: (
                    any("RELOADING" in x.fields for x in m)
                    and sum("READY" in x.fields for x in m) >= 2
                ),
                60,
                "RELOADING then READY",
            )
            reloading = next(i for i, m in enumerate(msgs) if "RELOADING" in m.fields)
            assert any("READY" in m.fields for m in msgs[reloading + 1 :])
            assert rig.daemon.cfg.conversation.follow_up_s == 1.0
            second = rig.daemon.appliance
            assert second is not None and second is not first
            deadline = time.monotonic() + 20
            while second.state is not State.IDLE and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert second.state is State.IDLE


async def test_muted_closes_the_microphone_and_the_watchdog_still_pings(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(update={"button": cfg.button.model_copy(update={"hold_s": 0.5})})
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg,
            sound_card,
            simulator,
            SIM_API_KEY,
            notifier=Notifier(),
            environ={"WATCHDOG_USEC": "1000000"},
        ) as rig:
            await ns.until(lambda m: len(ns.watchdog_pings()) >= 2, 20, "pings while idle")
            mark = len(rig.seen)
            await asyncio.to_thread(rig.press, 0.9)
            await rig.wait_state(State.MUTED, 10, since=mark)
            await ns.until(
                lambda m: any(x.fields.get("STATUS") == "Muted (microphone off)" for x in m), 10
            )
            await asyncio.sleep(0.5)
            blocks = rig.daemon.mic_blocks()
            pings = len(ns.watchdog_pings())
            await asyncio.sleep(2.5)
            assert rig.daemon.mic_blocks() == blocks  # the microphone is closed
            assert len(ns.watchdog_pings()) >= pings + 2  # but the daemon is alive and says so


async def test_a_reload_closes_the_pin_factory_of_the_build_it_replaces(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each build makes its pin factory from [gpio]; the one a reload replaces is closed (on a Pi:
    lgpio's chip handle and every claimed line released), and the last one at exit."""
    import sounddevice as sd
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.daemon import Daemon, Overrides

    sd._terminate()
    sd._initialize()
    made: list[MockFactory] = []

    def make(_gpio: object) -> MockFactory:
        made.append(MockFactory(pin_class=MockPWMPin))
        return made[-1]

    cfg = sim_config(simulator, tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        daemon = Daemon(
            cfg,
            str(path),
            Overrides(
                notifier=Notifier(),
                environ={"GEMINI_API_KEY": SIM_API_KEY},
                make_pin_factory=make,
            ),
        )
        task = asyncio.create_task(daemon.run())
        try:
            await ns.until(lambda m: any("READY" in x.fields for x in m), 60, "READY")
            assert len(made) == 1 and made[0].pins  # the LEDs and the button hold pins
            daemon.request(signal.SIGHUP)
            await ns.until(lambda m: sum("READY" in x.fields for x in m) >= 2, 60, "READY again")
            assert len(made) == 2
            assert made[0].pins == {}  # closed: every pin released
            assert made[1].pins
        finally:
            daemon.request(signal.SIGTERM)
            assert await asyncio.wait_for(task, 20) == 0
    assert made[1].pins == {}
