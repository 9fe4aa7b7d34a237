"""The composition root: every part of one build of the appliance, made from the config.

    parts = assemble(cfg, leds, environ=None, on_status=..., detector=None)
    detector = preflight(new_cfg)      # a reload: what a build would fail on, tried first

The daemon (device.daemon) runs what this builds and rebuilds it on a reload; nothing here runs
anything. The wake path is wired here: the microphone hands each block to the pre-roll and the
detector's scoring thread (`wake_path`), and the appliance owns the upload consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.apikey import find_api_key
from device.app.appliance import Appliance
from device.app.states import Status
from device.config import Config, EchoMode
from device.events import MIC_RATE, AudioBlock, WakeDetected

if TYPE_CHECKING:  # imported for real in assemble() (lazily: start-up time)
    from device.audio.mic import Microphone
    from device.audio.speaker import Speaker
    from device.home.link import Home
    from device.leds import Leds
    from device.wakeword.detector import Detector
    from device.wakeword.preroll import PreRoll

log = logging.getLogger(__name__)


WAKE_LEVEL_SAMPLES = MIC_RATE * 8 // 10
"""The wake word's level (for arbitration) is measured over the 0.8 s before its end."""

Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class MicPower:
    """Opens (a task running the microphone) and closes it for mute. The task belongs to the
    runner's TaskGroup once `own_tasks_by()` was called (the daemon does, before starting it)."""

    def __init__(self, mic: Microphone) -> None:
        self._mic = mic
        self._task: asyncio.Task[None] | None = None
        self._spawn: Spawn | None = None

    def own_tasks_by(self, spawn: Spawn) -> None:
        """Create the microphone's task with `spawn(coro, name)` (a TaskGroup's create_task)."""
        self._spawn = spawn

    @property
    def on(self) -> bool:
        """True while the microphone task runs."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the microphone task (it reopens by itself on failures)."""
        if not self.on:
            if self._spawn is not None:
                self._task = self._spawn(self._mic.run(), "microphone")
            else:
                self._task = asyncio.get_running_loop().create_task(
                    self._mic.run(), name="microphone"
                )

    async def stop(self) -> None:
        """Close the microphone: nothing is captured any more."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def wake_path(preroll: PreRoll, detector: Detector) -> Callable[[AudioBlock], None]:
    """The microphone's wake-word consumer: each block goes into the pre-roll and to the
    detector's scoring thread (its queue is the one buffer on the wake path)."""

    def sink(block: AudioBlock) -> None:
        preroll.add(block)
        detector.feed(block)

    return sink


@dataclass
class Assembly:
    """One build's parts (the daemon runs them)."""

    appliance: Appliance
    mic: Microphone
    power: MicPower
    speaker: Speaker
    detector: Detector
    home: Home | None
    """The link to the home's MQTT broker ([mqtt] with a host), else None."""

    @property
    def on_wake(self) -> Callable[[WakeDetected], object]:
        """Where the detector's wake words go: through the arbitration, or to the appliance."""
        return self.home.on_wake if self.home is not None else self.appliance.post


def assemble(
    cfg: Config,
    leds: Leds,
    *,
    environ: dict[str, str] | None,
    on_status: Callable[[Status], None],
    detector: Detector | None = None,
) -> Assembly:
    """Build every part (blocking: loads the wake word model unless `detector` is given)."""
    from device.app.ports import Parts
    from device.audio.echo import EchoGate
    from device.audio.echo_room import effective_mode
    from device.audio.mic import Microphone
    from device.audio.speaker import Speaker
    from device.audio.supervisor import DeviceEvent
    from device.live import LiveClient
    from device.tools import local_tools
    from device.wakeword.detector import build_detector
    from device.wakeword.preroll import PreRoll

    sink: list[Appliance] = []

    def on_device(ev: DeviceEvent) -> None:
        if sink:
            sink[0].post(ev)

    echo_mode = effective_mode(cfg.audio.echo_mode, cfg.state_dir)
    reference = canceller = None
    if echo_mode is EchoMode.AEC:
        from device.audio.aec import EchoCanceller, EchoReference

        reference = EchoReference()
        canceller = EchoCanceller(reference)
    speaker = Speaker(cfg.audio, cfg.state_dir, on_event=on_device, reference=reference)
    mic = Microphone(cfg.audio, on_event=on_device, canceller=canceller)
    preroll = PreRoll(cfg.wakeword.preroll_s)
    gate = EchoGate(
        echo_mode,
        cfg.audio.echo_tail_ms,
        learned=canceller.learned if canceller is not None else None,
        captured_at=mic.captured_at,
        heard_until=lambda: speaker.heard_until,
        reply_heard_until=lambda: speaker.reply_heard_until,
        earcon_tail_ms=cfg.audio.earcon_tail_ms,
    )
    api_key = find_api_key(cfg.live, environ)
    if api_key is None:
        log.error("no API key found: wake-ups will answer with the bad key sound")
    live = LiveClient(
        cfg, api_key, local_tools(), key_source=lambda: find_api_key(cfg.live, environ)
    )
    power = MicPower(mic)
    if detector is None:
        detector = build_detector(cfg.wakeword, Path(cfg.state_dir))
    mic.add_sink("wakeword", wake_path(preroll, detector))
    parts = Parts(mic, power, speaker, preroll, detector, live, leds, gate, gate.talks_over)
    appliance = Appliance(cfg, parts, on_status=on_status)
    sink.append(appliance)
    home = None
    if cfg.mqtt.host:
        from device.home.link import Home

        def wake_level(ev: WakeDetected) -> float:
            return preroll.level_db(ev.end - WAKE_LEVEL_SAMPLES, ev.end)

        home = Home(cfg.mqtt, appliance, level_of=wake_level, environ=environ)
        appliance.add_listener(home.on_status)
    return Assembly(appliance, mic, power, speaker, detector, home)


def preflight(cfg: Config) -> Detector:
    """Load the new wake word model and resolve the new audio devices (blocking: a worker
    thread); raises what a build would. Returns the loaded detector for the next build."""
    from device.audio import devices
    from device.wakeword.detector import build_detector

    detector = build_detector(cfg.wakeword, Path(cfg.state_dir))
    devices.resolve(cfg.audio.input_device, devices.Direction.INPUT)
    devices.resolve(cfg.audio.output_device, devices.Direction.OUTPUT)
    return detector
