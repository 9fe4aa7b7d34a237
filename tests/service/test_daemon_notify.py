"""The real `livespeaker run` process talking to a real NOTIFY_SOCKET.

Real parts: the daemon as a subprocess, PortAudio through the virtual sound card, openWakeWord on
espeak-ng speech, the Live API simulator over TLS. The audio path is stalled for real by
suspending the PulseAudio source the daemon records from.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import CertFiles
from device.simulator.server import SimulatorThread
from tests.conftest import SIM_API_KEY
from tests.service.notify_socket import Message, NotifySocket

pytestmark = pytest.mark.integration

WATCHDOG_S = 2.0  # WatchdogSec: the daemon pings every 1 s while audio flows
IDLE = "Listening for 'hey jarvis'"


def _statuses(msgs: list[Message]) -> list[str]:
    return [m.fields["STATUS"] for m in msgs if "STATUS" in m.fields]


def _pactl(card: VirtualSoundCard, *args: str) -> None:
    subprocess.run(["pactl", *args], env=card.env, check=True, capture_output=True, timeout=10)


Daemon = tuple[subprocess.Popen[bytes], NotifySocket, Path]


@pytest.fixture
def start_daemon(
    sound_card: VirtualSoundCard, tls_certs: CertFiles, tmp_path: Path
) -> Iterator[Callable[[str], Daemon]]:
    """start_daemon(extra_toml) runs `livespeaker run` against the simulator on a NOTIFY_SOCKET."""
    with (
        SimulatorThread(
            tls_certs, api_keys=[SIM_API_KEY], realtime_factor=20.0, hold_turn_complete=False
        ) as sim,
        NotifySocket() as ns,
    ):
        procs: list[tuple[subprocess.Popen[bytes], Path]] = []

        def start(extra: str) -> Daemon:
            config = tmp_path / "config.toml"
            config.write_text(
                f'state_dir = "{tmp_path / "state"}"\n'
                f'[live]\nbase_url = "{sim.base_url}"\nca_file = "{tls_certs.ca}"\n'
                '[gpio]\npin_factory = "mock"\n'
                "[conversation]\nfollow_up_s = 1.0\n" + extra
            )
            env = {
                **sound_card.env,
                "NOTIFY_SOCKET": ns.path,
                "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
                "GEMINI_API_KEY": SIM_API_KEY,
            }
            log = tmp_path / "daemon.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "device", "--config", str(config), "run"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append((proc, log))
            return proc, ns, log

        try:
            yield start
        finally:
            for proc, log in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                print(log.read_text(errors="replace")[-5000:])


@pytest.fixture
def daemon(start_daemon: Callable[[str], Daemon]) -> Daemon:
    return start_daemon("")


def test_ready_status_watchdog_stall_and_stopping(
    daemon: Daemon,
    sound_card: VirtualSoundCard,
    speech_wav: Callable[..., Path],
) -> None:
    proc, ns, _ = daemon
    msgs = ns.wait_for(lambda m: any("READY" in x.fields for x in m), 120, "READY=1")
    ready = next(i for i, m in enumerate(msgs) if "READY" in m.fields)
    assert msgs[ready].fields["STATUS"] == IDLE
    assert _statuses(msgs[:ready])[0] == "Starting"

    # Periodic WATCHDOG=1, none before READY (systemd arms the watchdog at READY).
    ns.wait_for(lambda _: len(ns.watchdog_pings()) >= 3, 30, "3 watchdog pings")
    first_ping = next(i for i, m in enumerate(ns.snapshot()) if m.fields.get("WATCHDOG") == "1")
    assert first_ping > ready

    # A wake-up: STATUS follows every state change, in order, and comes back to idle.
    sound_card.play_into_mic(speech_wav("hey jarvis, what time is it?")).wait(30)

    def answered_and_idle(m: list[Message]) -> bool:
        after = _statuses(m[ready + 1 :])
        return "Answering" in after and after[-1] == IDLE

    ns.wait_for(answered_and_idle, 90, "a conversation, then back to idle")
    seen = _statuses(ns.snapshot()[ready + 1 :])
    expected = ["Connecting", "Listening", "Answering", IDLE]
    it = iter(seen)
    assert all(state in it for state in expected), seen  # in this order

    # The audio path stalls (source suspended: no more microphone blocks): pings stop.
    _pactl(sound_card, "suspend-source", "mic", "1")
    try:
        time.sleep(2.5 * WATCHDOG_S / 2)  # a ping already on its way may still arrive
        before = len(ns.watchdog_pings())
        time.sleep(3 * WATCHDOG_S / 2)
        assert len(ns.watchdog_pings()) == before, "pinged while no audio arrived"
    finally:
        _pactl(sound_card, "suspend-source", "mic", "0")
    n = len(ns.watchdog_pings())
    ns.wait_for(lambda _: len(ns.watchdog_pings()) >= n + 2, 60, "pings once audio flows again")

    # SIGTERM: STOPPING=1, then a clean exit.
    proc.send_signal(signal.SIGTERM)
    ns.wait_for(lambda m: any("STOPPING" in x.fields for x in m), 30, "STOPPING=1")
    assert proc.wait(30) == 0


def test_missing_microphone_is_an_audio_error_not_a_restart_loop(
    start_daemon: Callable[[str], Daemon],
) -> None:
    """No such mic: the daemon says so, keeps retrying and keeps the watchdog fed (a restart
    would not bring the device back; the LEDs and STATUS tell the user instead)."""
    proc, ns, log = start_daemon('[audio]\ninput_device = "NoSuchMic"\n')
    msgs = ns.wait_for(lambda m: any("READY" in x.fields for x in m), 120, "READY=1")
    assert "Error: audio device missing or busy" in _statuses(msgs), _statuses(msgs)
    n = len(ns.watchdog_pings())
    ns.wait_for(lambda _: len(ns.watchdog_pings()) >= n + 3, 30, "pings while retrying the mic")
    assert proc.poll() is None
    text = log.read_text(errors="replace")
    assert "NoSuchMic" in text
    # READY came with the error, not after waiting out the audio start timeout for a device
    # that is not there.
    assert "audio did not start on the microphone" not in text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
