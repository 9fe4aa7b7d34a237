"""The whole daemon in-process on the test rig: PulseAudio sound card, Live simulator, mock pins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.appliance import Appliance
from device.app.states import State, Status
from device.config import Config
from device.daemon import Daemon, Overrides
from device.service import Notifier
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator

RGB = (17, 27, 22)
BUTTON = 23


@dataclass
class Seen:
    """One state change and the RGB pin levels right after the LEDs were updated."""

    status: Status
    pins: tuple[float, float, float]
    at: float


@dataclass
class Rig:
    """A running daemon plus handles on everything around it."""

    daemon: Daemon
    appliance: Appliance
    factory: Any
    card: VirtualSoundCard
    sim: LiveSimulator
    cfg: Config
    seen: list[Seen] = field(default_factory=list)
    players: list[Any] = field(default_factory=list)

    def pins(self) -> tuple[float, float, float]:
        """RGB pin levels now."""
        r, g, b = (round(float(self.factory.pin(p).state), 2) for p in RGB)
        return (r, g, b)

    @property
    def state(self) -> State:
        """The appliance's state now."""
        return self.appliance.state

    def states(self) -> list[State]:
        """Every state entered so far, in order (consecutive repeats collapsed)."""
        out: list[State] = []
        for s in self.seen:
            if not out or out[-1] is not s.status.state:
                out.append(s.status.state)
        return out

    async def wait_state(self, state: State, within: float = 30.0, since: int = 0) -> Seen:
        """Wait until the appliance enters `state` (looking at changes from index `since`)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for s in self.seen[since:]:
                if s.status.state is state:
                    return s
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {state.value} within {within} s; states: {self.states()}")

    def press(self, hold_s: float = 0.15) -> float:
        """Press and release the button (pull-up: pressed = low); returns the monotonic time of
        the release (what the appliance acts on)."""
        pin = self.factory.pin(BUTTON)
        pin.drive_low()
        time.sleep(hold_s)
        released = time.monotonic()
        pin.drive_high()
        return released

    async def ask_by_button(self, question: npt.NDArray[np.int16]) -> Seen:
        """Press the button, say `question` once listening; returns the entry into responding."""
        mark = len(self.seen)
        await asyncio.to_thread(self.press)
        await self.wait_state(State.LISTENING, 20, since=mark)
        self.play(question)
        return await self.wait_state(State.RESPONDING, 30, since=mark)

    def play(self, samples: npt.NDArray[np.int16], rate: int = 16000, lead_s: float = 0.7) -> Any:
        """Speak into the virtual microphone (returns the player process).

        Led by `lead_s` of silence: the first audio into an idle null sink is partly lost at its
        monitor (test-rig.md, the first few ms), which would clip the start of the speech.
        """
        lead = np.zeros(int(lead_s * rate), np.int16)
        proc = self.card.feed_mic(np.concatenate([lead, samples]), rate)
        self.players.append(proc)
        return proc

    def reap(self) -> None:
        """Wait for (or stop) every player process started by play()."""
        for proc in self.players:
            try:
                proc.wait(15)
            except Exception:
                proc.kill()
                proc.wait(5)


def snapshot_pins(factory: Any) -> tuple[float, float, float]:
    r, g, b = (round(float(factory.pin(p).state), 2) for p in RGB)
    return (r, g, b)


@asynccontextmanager
async def running_daemon(
    cfg: Config,
    card: VirtualSoundCard,
    sim: LiveSimulator,
    api_key: str,
    *,
    notifier: Notifier | None = None,
    start: State = State.IDLE,
    config_path: str | None = None,
    environ: dict[str, str] | None = None,
) -> AsyncIterator[Rig]:
    """Start the real daemon (real audio, real wake word, real SDK) and stop it afterwards."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()  # PortAudio must see the virtual card's ALSA `default`
    factory = MockFactory(pin_class=MockPWMPin)
    built: list[Appliance] = []
    daemon = Daemon(
        cfg,
        config_path,
        overrides=Overrides(
            pin_factory=factory,
            notifier=notifier,
            environ={"GEMINI_API_KEY": api_key, **(environ or {})},
            on_appliance=built.append,
        ),
    )
    task = asyncio.create_task(daemon.run(), name="daemon")
    rig: Rig | None = None
    try:
        deadline = time.monotonic() + 60
        while not built:
            if task.done():
                await task
            assert time.monotonic() < deadline, "daemon did not build its parts"
            await asyncio.sleep(0.05)
        appliance = built[0]
        rig = Rig(daemon, appliance, factory, card, sim, cfg)
        appliance.add_listener(
            lambda st: rig.seen.append(Seen(st, snapshot_pins(factory), time.monotonic()))
        )
        if appliance.state is not State.STARTING:  # it started before we listened
            rig.seen.append(Seen(appliance.status, snapshot_pins(factory), time.monotonic()))
        await rig.wait_state(start, 60)
        yield rig
    finally:
        import signal

        if not task.done():
            daemon.request(signal.SIGTERM)
        await asyncio.wait_for(task, 20)
        factory.reset()
        if rig is not None:
            await asyncio.to_thread(rig.reap)


def quiet(
    samples: npt.NDArray[np.int16], seconds: float, rate: int = 16000
) -> npt.NDArray[np.int16]:
    """Samples followed by silence."""
    return np.concatenate([samples, np.zeros(int(seconds * rate), np.int16)])
