"""The daemon: the lifecycle runner. It has device.assembly build every part from the config,
runs them in one TaskGroup per build, talks to systemd, and on a reload rebuilds the parts and
keeps itself.

READY=1 is sent once the microphone is open (unless muted), the wake word model is loaded and the
loop runs; STATUS= follows every state; the watchdog is fed by microphone blocks (by a loop
heartbeat while muted, when the microphone is closed on purpose). SIGTERM: STOPPING=1, the
conversation ends (session closed, handle saved), LEDs off, exit 0 within ~2 s. SIGHUP: the new
config is validated; if it is bad the daemon keeps running on the old one (logged), otherwise it
sends RELOADING=1, rebuilds every part in-process with the new config, and sends READY=1 again.
A config that validates but cannot be built (a wake word model file that is missing, an audio
device name that matches nothing) is refused before the running parts are touched: the new wake
model is loaded and the devices resolved first, on a worker thread, while the old parts keep
running; the reason goes to the journal and stays in the STATUS= line until a reload succeeds. If a
rebuild fails anyway, the daemon rebuilds with the configuration that ran before (never exits).
A state_dir that cannot be written (full, read-only) is shown in the STATUS= line too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.app.appliance import Appliance
from device.app.states import BUSY_STATES, MUTED_STATES, Status, status_line
from device.config import Config, ConfigError, GpioConfig
from device.service import Notifier, StartupPinger, Watchdog
from device.timers import scheduler as timer_scheduler

if TYPE_CHECKING:  # imported for real where each part is built (lazily: start-up time)
    from device.assembly import Assembly
    from device.audio.mic import Microphone
    from device.audio.speaker import Speaker
    from device.button import HardwareButton
    from device.leds import Leds
    from device.wakeword.detector import Detector

PinFactory = Any
"""gpiozero's pin factory (the vendor seam: gpiozero has no type information)."""

log = logging.getLogger(__name__)

AUDIO_START_TIMEOUT_S = 30.0
AUDIO_REPORT_S = 3.0
STARTUP_LIMIT_S = AUDIO_START_TIMEOUT_S + 60.0
"""Longest (re)start that keeps systemd's watchdog fed: model load + waiting for audio."""
STOP_LIMIT_S = 1.5
HEARTBEAT_S = 0.5
STATUS_NOTE_MAX = 200
"""A refused reload's reason is cut to this many characters in STATUS= (the journal has it all)."""


class RunEnd(enum.Enum):
    """Why one run of the parts ended."""

    STOP = "stop"
    """SIGTERM/SIGINT: exit."""
    RELOAD = "reload"
    """SIGHUP with a valid new config: rebuild."""


def release_memory() -> None:
    """Free what replaced parts left in reference cycles, give freed heap back to the OS (glibc
    keeps it otherwise: each model load would raise the RSS for good), and freeze what is left.

    Frozen objects (the imported libraries, the parts just built: ~90,000 of them) are never
    looked at by the garbage collector again. Otherwise each of its full collections walks them
    all, holding the GIL: 18-24 ms on the x86 rig, several times that on a Cortex-A53, during
    which neither the speaker's nor the microphone's callback can run, and a longer stall than
    the output's device buffer (40 ms) is a click in the answer. Unfrozen first, so that parts a
    reload replaced can be collected."""
    gc.unfreeze()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    gc.freeze()


def wake_phrase(model: str) -> str:
    """'hey_jarvis' -> 'hey jarvis'; a model file -> its name."""
    return Path(model).stem.replace("_", " ")


@dataclass
class Overrides:
    """Parts a test may supply instead of the real ones (pins, systemd socket, api key source)."""

    pin_factory: PinFactory = None
    notifier: Notifier | None = None
    environ: dict[str, str] | None = None
    on_appliance: Callable[[Appliance], None] | None = None
    """Called with each appliance built (tests observe it)."""
    make_pin_factory: Callable[[GpioConfig], PinFactory] | None = None
    """Makes the pin factory for each build (default device.gpio.make_pin_factory); the daemon
    closes each one it made when that build ends (unlike `pin_factory`, which the caller owns)."""


class Daemon:
    """`await Daemon(cfg, config_path).run()` until SIGTERM; returns the exit status."""

    def __init__(
        self, cfg: Config, config_path: str | None = None, overrides: Overrides | None = None
    ) -> None:
        self.cfg = cfg
        self._config_path = config_path
        self._o = overrides or Overrides()
        self.notifier = self._o.notifier or Notifier()
        self._signal: asyncio.Queue[signal.Signals] = asyncio.Queue()
        self._muted = False
        self._heartbeat = 0
        self._reloads = 0
        self.appliance: Appliance | None = None
        self._mic: Microphone | None = None
        self._speaker: Speaker | None = None
        self._status: Status | None = None
        self._refused: str | None = None
        """Why the last reload was refused (shown in STATUS= until one succeeds)."""
        self._next_detector: Detector | None = None
        """The wake word detector a reload's preflight loaded, for the next build."""
        self._previous_cfg: Config | None = None
        self._up = False
        """The current build is up (READY=1 sent)."""

    @property
    def microphone(self) -> Microphone | None:
        """The current build's Microphone (None before it): tests listen in with a consumer."""
        return self._mic

    def audio_flowing(self) -> bool:
        """The microphone delivers and the speaker pulls audio (current build)."""
        return bool(self._mic and self._mic.flowing and self._speaker and self._speaker.flowing)

    def mic_blocks(self) -> int:
        """Microphone blocks delivered so far by the current build (0 before it)."""
        return int(self._mic.progress.blocks) if self._mic is not None else 0

    def request(self, sig: signal.Signals) -> None:
        """Act as if the signal arrived (tests; the signal handlers call this too)."""
        self._signal.put_nowait(sig)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns 0."""
        from device.statefile import problems

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request, sig)

        def state_dir_changed() -> None:  # called on the thread whose write failed
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(self._show_status)

        problems.add_listener(state_dir_changed)
        previous: Config | None = None  # the configuration that ran before a reload
        try:
            while True:
                try:
                    outcome = await self._run_once()
                except Exception as exc:
                    if previous is None or self._up:
                        raise  # the first start (78 for a bad config), or not a rebuild failure
                    self._refuse(str(exc))
                    self.cfg, previous = previous, None  # rebuild what ran before
                    continue
                if outcome is not RunEnd.RELOAD:
                    break
                previous = self._previous_cfg
                self.notifier.reloading()
                self._reloads += 1
        finally:
            gc.unfreeze()  # what release_memory() froze is the collector's again
            problems.remove_listener(state_dir_changed)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        return 0

    async def _run_once(self) -> RunEnd:
        """Build the parts, run until a signal, tear down."""
        from device.leds import Leds

        cfg = self.cfg
        self._up = False
        self.notifier.status("Starting")
        owned = None
        if (pin_factory := self._o.pin_factory) is None:
            from device.gpio import make_pin_factory

            pin_factory = owned = (self._o.make_pin_factory or make_pin_factory)(cfg.gpio)
        try:
            leds = Leds(cfg.leds, pin_factory)
            try:
                return await self._run_parts(cfg, leds, pin_factory)
            finally:
                leds.close()
        finally:
            if owned is not None:  # a reload makes a new one: release the pins and the chip
                owned.close()

    def _build(self, cfg: Config, leds: Leds) -> Assembly:
        from device.assembly import assemble

        detector, self._next_detector = self._next_detector, None
        return assemble(
            cfg, leds, environ=self._o.environ, on_status=self._on_status, detector=detector
        )

    async def _run_parts(self, cfg: Config, leds: Leds, pin_factory: PinFactory) -> RunEnd:
        pinger = None  # systemd arms its watchdog at the first READY=1: nothing to feed before
        if self._reloads:
            pinger = StartupPinger.from_environment(self.notifier, STARTUP_LIMIT_S, self._o.environ)
        if pinger is not None:
            pinger.start()
        try:
            return await self._build_and_run(cfg, leds, pin_factory, pinger)
        finally:
            if pinger is not None:
                pinger.stop()

    async def _build_and_run(
        self, cfg: Config, leds: Leds, pin_factory: PinFactory, pinger: StartupPinger | None
    ) -> RunEnd:
        b = await asyncio.to_thread(self._build, cfg, leds)  # loading the wake model blocks
        self._mic, self._speaker = b.mic, b.speaker
        appliance = self.appliance = b.appliance
        # On a reload, the parts this build replaces sit in reference cycles (cancelled tasks,
        # callbacks), and their native memory (the wake word interpreters, their model files
        # open) is invisible to the collector's thresholds: without a full collection now, every
        # reload would keep the old build until one happens to run, maybe never. On the first
        # build, the imports and the model load leave ~12 MiB of freed heap that glibc would keep.
        release_memory()
        if self._o.on_appliance:
            self._o.on_appliance(appliance)
        muted = self._muted = appliance.saved_muted
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(b.speaker.run(), name="speaker"),
                tg.create_task(appliance.run(), name="appliance"),
                tg.create_task(self._beat(), name="heartbeat"),
                tg.create_task(b.detector.run(None, b.on_wake, appliance.post), name="wake"),
            ]
            if b.home is not None:
                tasks.append(tg.create_task(b.home.run(), name="mqtt"))
            # The microphone's task (closed and opened again for mute) is the group's too.
            b.power.own_tasks_by(lambda coro, name: tg.create_task(coro, name=name))
            button = self._button(cfg, pin_factory, appliance)
            if not muted:
                await b.power.start()
            await self._wait_audio(b.speaker, None if muted else b.mic)
            # Opening the streams parses ALSA's configuration and enumerates its devices:
            # freed heap that glibc would keep (idle RSS 118.7 MiB instead of 120.8 on the rig).
            release_memory()
            appliance.started(muted)
            # After Started is queued: a timer that ran out while the daemon was down rings now.
            lead_s = (cfg.audio.output_latency_ms + cfg.audio.output_block_ms) / 1000
            tasks.append(
                tg.create_task(
                    timer_scheduler.run(appliance.timers, appliance.post, lead_s=lead_s),
                    name="timers",
                )
            )
            await asyncio.sleep(0)
            self._status = appliance.status
            self._up = True
            self.notifier.ready(self._status_line())
            if pinger is not None:
                pinger.stop()
            watchdog = Watchdog.from_environment(
                self.notifier, lambda: self._progress(b.mic), self._o.environ
            )
            if watchdog is not None:
                tasks.append(tg.create_task(watchdog.run(), name="watchdog"))
            outcome = await self._wait_signal()
            if outcome is RunEnd.STOP:
                self.notifier.stopping("Stopping")
            await appliance.stop(STOP_LIMIT_S)
            leds.off()
            if button is not None:
                button.close()
            await b.power.stop()
            for t in tasks:
                t.cancel()
        return outcome

    def _button(
        self, cfg: Config, pin_factory: PinFactory, appliance: Appliance
    ) -> HardwareButton | None:
        if not cfg.button.enabled:
            return None
        from device.button import HardwareButton

        return HardwareButton(cfg.button, pin_factory, asyncio.get_running_loop(), appliance.post)

    async def _wait_audio(self, speaker: Speaker, mic: Microphone | None) -> None:
        """READY waits until audio flows: the microphone delivers (unless muted) and the speaker
        pulls audio, or a device's first open failed (a missing or busy device: its error shows
        at once, and waiting would only delay the service's start). The supervisors keep
        retrying meanwhile; after AUDIO_START_TIMEOUT_S the daemon goes on without a device
        that opened but delivers nothing."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        devices: list[tuple[str, Microphone | Speaker]] = [("speaker", speaker)]
        if mic is not None:
            devices.insert(0, ("microphone", mic))

        def waiting_for() -> list[str]:
            return [
                name
                for name, device in devices
                if not device.flowing and device.supervisor.failed_opens == 0
            ]

        next_report = AUDIO_REPORT_S
        while pending := waiting_for():
            waited = loop.time() - t0
            if waited >= AUDIO_START_TIMEOUT_S:
                log.error(
                    "audio did not start on the %s within %.0f s; continuing",
                    " and ".join(pending),
                    AUDIO_START_TIMEOUT_S,
                )
                return
            if waited >= next_report:
                next_report += AUDIO_REPORT_S
                log.info(
                    "waiting %.0f s so far for audio from the %s", waited, " and ".join(pending)
                )
            await asyncio.sleep(0.02)
        log.info("audio flowing %.2f s after the streams were started", loop.time() - t0)

    async def _wait_signal(self) -> RunEnd:
        while True:
            sig = await self._signal.get()
            if sig is not signal.SIGHUP:
                log.info("%s: stopping", sig.name)
                return RunEnd.STOP
            if await self._reload():
                return RunEnd.RELOAD

    async def _reload(self) -> bool:
        """Validate the config again and build what it can make fail (the running parts keep
        running meanwhile); True when the new one should be applied."""
        from device.config import load_config

        try:
            new, source = load_config(self._config_path)
        except ConfigError as exc:
            self._refuse(str(exc))
            return False
        why = None
        try:
            from device.assembly import preflight

            self._next_detector = await asyncio.to_thread(preflight, new)
        except Exception as exc:
            why = str(exc)
        if why is not None:
            self._refuse(why)
            release_memory()  # the preflight may have loaded a wake word model for nothing
            return False
        log.info("SIGHUP: reloading the configuration from %s", source)
        self._previous_cfg, self.cfg = self.cfg, new
        self._refused = None
        return True

    def _refuse(self, why: str) -> None:
        """A reload was refused: journal (error) and STATUS= say why."""
        one_line = " ".join(why.split())
        self._refused = (
            one_line if len(one_line) <= STATUS_NOTE_MAX else one_line[:STATUS_NOTE_MAX] + "…"
        )
        log.error(
            "SIGHUP: new configuration refused, the running one stays: %s",
            why,
            extra={"RELOAD": "refused"},
        )
        self._show_status()

    def _status_line(self) -> str:
        """STATUS=: the appliance's line, plus a refused reload and a state_dir write problem."""
        from device.statefile import problems

        line = "Starting"
        if self._status is not None:
            line = status_line(self._status, wake_phrase(self.cfg.wakeword.model))
        notes = [f"config reload refused: {self._refused}"] if self._refused else []
        if state := problems.summary(self.cfg.state_dir):
            notes.append(f"warning: {state}")
        return f"{line} ({'; '.join(notes)})" if notes else line

    def _show_status(self) -> None:
        self.notifier.status(self._status_line())

    def _on_status(self, status: Status) -> None:
        # Ringing while muted keeps the microphone closed: the heartbeat feeds the watchdog then too.
        self._muted = status.state in MUTED_STATES
        # In a conversation (or ringing) the upload needs each block at once and replies must
        # start without restarting the output; idle, the audio path wakes the CPU less often.
        busy = status.state in BUSY_STATES
        if self._mic is not None:
            self._mic.low_latency(busy)
        if self._speaker is not None:
            self._speaker.hold_open(busy)
        self._status = status
        self._show_status()

    def _progress(self, mic: Microphone) -> int:
        """Microphone blocks, plus failed opens while the mic is missing (the app shows an audio
        error and keeps retrying: a restart would not bring the device back), plus the loop
        heartbeat while muted (mic closed on purpose). A stream that opens but delivers nothing
        advances none of these, so systemd restarts a wedged audio path."""
        beat = self._heartbeat if self._muted else 0
        return int(mic.progress.blocks) + int(mic.supervisor.failed_opens) + beat

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self._heartbeat += 1
