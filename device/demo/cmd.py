"""Run the whole appliance on simulated hardware: simulator, mock pins drawn live, scripted speech."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from device.apikey import find_api_key
from device.cli import Handler
from device.config import Config

log = logging.getLogger(__name__)
DEMO_KEY = "demo-key"
"""The key the demo's own simulator accepts."""


def register(parser: argparse.ArgumentParser) -> Handler:
    """`demo [--script | --interactive] [--simulator]`."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--script",
        action="store_true",
        help="speak the scripted conversation into a virtual sound card, then exit "
        "(the default without a terminal or without a sound card)",
    )
    mode.add_argument(
        "--interactive",
        action="store_true",
        help="use this machine's default microphone and speaker until q / Ctrl-C",
    )
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="use the local Live API simulator even when an API key is configured",
    )
    return _run


def has_sound_card() -> bool:
    """True when PortAudio sees a default microphone and a default speaker."""
    import sounddevice as sd

    try:
        sd.query_devices(kind="input")
        sd.query_devices(kind="output")
    except (ValueError, sd.PortAudioError):
        return False
    return True


def _run(args: argparse.Namespace, cfg: Config) -> int:
    scripted = args.script or (
        not args.interactive and not (sys.stdin.isatty() and has_sound_card())
    )
    if args.log_level != "debug":  # the panel is the demo's output; logs only for problems
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    return asyncio.run(_demo(cfg, scripted, args.simulator))


async def _demo(cfg: Config, scripted: bool, force_sim: bool) -> int:
    from device.simhw.pulse import VirtualSoundCard

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="livespeaker-demo-")))
        card: VirtualSoundCard | None = None
        if scripted or not has_sound_card():
            card = VirtualSoundCard(tmp / "pulse")
            card.start()
            stack.callback(card.stop)
        import sounddevice as sd

        sd._terminate()
        sd._initialize()  # PortAudio must see the virtual card's ALSA default
        async with contextlib.AsyncExitStack() as astack:
            audio: list[Any] = []
            if scripted:
                from device.demo.script import synthesize_script

                audio = await asyncio.to_thread(synthesize_script)
            cfg, environ, where = await _endpoint(cfg, tmp, force_sim, astack, audio)
            print(f"livespeaker demo: {where}; state in {tmp / 'state'}", flush=True)
            return await _run_daemon(cfg, environ, card if scripted else None, audio)
    return 1  # not reached


async def _endpoint(
    cfg: Config,
    tmp: Path,
    force_sim: bool,
    stack: contextlib.AsyncExitStack,
    script_audio: list[Any],
) -> tuple[Config, dict[str, str] | None, str]:
    """The config to run with: demo state dir, mock pins, and the simulator unless a key is set.

    The scripted lines (if any) are taught to the simulator.
    """
    updates: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "gpio": cfg.gpio.model_copy(update={"pin_factory": "mock"}),
    }
    key = find_api_key(cfg.live)
    if key is not None and not force_sim and not cfg.live.base_url:
        return cfg.model_copy(update=updates), None, f"real Live API (key from {key.source})"
    from device.simulator.certs import ensure_certs
    from device.simulator.server import LiveSimulator

    sim = LiveSimulator(ensure_certs(tmp / "certs"), api_keys=[DEMO_KEY])
    await sim.start()
    stack.push_async_callback(sim.stop)
    if script_audio:
        from device.demo.script import SCRIPT, teach

        for line, pcm in zip(SCRIPT, script_audio, strict=True):
            teach(sim, line, pcm)
    live = {"base_url": sim.base_url, "ca_file": str(sim.certs.ca)}
    updates["live"] = cfg.live.model_copy(update=live)
    return (
        cfg.model_copy(update=updates),
        {"GEMINI_API_KEY": DEMO_KEY},
        f"Live API simulator at {sim.base_url}",
    )


async def _run_daemon(
    cfg: Config, environ: dict[str, str] | None, card: Any, audio: list[Any]
) -> int:
    """Start the daemon with mock pins; run the script (card given) or until q / Ctrl-C."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.app.appliance import Appliance
    from device.daemon import Daemon, Overrides
    from device.demo.panel import Panel
    from device.demo.script import StateLog, run_script

    factory = MockFactory(pin_class=MockPWMPin)
    panel = Panel(cfg, factory)
    states = StateLog()

    def attach(appliance: Appliance) -> None:
        appliance.add_listener(panel.status)
        appliance.add_turn_listener(panel.turn)
        appliance.add_listener(lambda st: states.add(st.state))

    daemon = Daemon(
        cfg, overrides=Overrides(pin_factory=factory, environ=environ, on_appliance=attach)
    )
    task = asyncio.create_task(daemon.run(), name="daemon")
    drawing = asyncio.create_task(panel.live(), name="led-panel")
    ok = True
    try:
        with _keys(cfg, factory, daemon):
            if card is None:
                panel.say("press any key for the button (hold it to mute), q to quit")
                await task
                return 0
            try:
                latencies = await run_script(
                    card, states, panel.say, audio, cfg.conversation.follow_up_s
                )
            except TimeoutError:
                panel.say(f"the scripted conversation did not complete; states: {panel.states}")
                ok = False
            else:
                answered = [t for t in panel.turns if t[1]]
                ok = len(answered) >= len(latencies)
                lat = ", ".join(f"{x:.2f} s" for x in latencies)
                panel.say(
                    f"demo {'complete' if ok else 'INCOMPLETE'}: {len(answered)} answered turns; latency per turn: {lat}"
                )
    finally:
        drawing.cancel()
        if not task.done():
            daemon.request(signal.SIGTERM)
        await asyncio.wait_for(task, 30)
        factory.close()
    return 0 if ok else 1


@contextlib.contextmanager
def _keys(cfg: Config, factory: Any, daemon: Any) -> Any:
    """Keys act as the button when stdin is a terminal."""
    if not (sys.stdin.isatty() and cfg.button.enabled):
        yield
        return
    from device.demo.keys import KeyButton, keys_as_button

    button = KeyButton(
        factory.pin(cfg.button.pin), cfg.button.pull_up, lambda: daemon.request(signal.SIGTERM)
    )
    with keys_as_button(button):
        yield
