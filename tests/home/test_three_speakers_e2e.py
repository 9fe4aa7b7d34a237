"""Three speakers in one home: three `livespeaker run` processes, each on its own virtual sound
card, one Mosquitto, one Live API simulator. The same spoken "Hey Jarvis, what is the capital of
France?" reaches all three microphones at different levels (0, -6 and -12 dB, the loudest one
changing from trial to trial): exactly one connection reaches the simulator per trial, from the
loudest speaker, carrying the whole question; the other two never leave idle. Then the broker is
killed (each speaker answers its own wake word) and started again (one answers again), and a
speaker killed outright is shown offline by its last will."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device.app.states import STATUS_LINES, State
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import ensure_certs
from device.simulator.server import ConnectionRecord, LiveSimulator, SimulatorThread
from tests.bench.bench_conversations import teach
from tests.conftest import SpeechFactory
from tests.home.broker import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KEY = "three-speakers-key"
NAMES = ("kitchen", "hall", "bedroom")
GAINS = (1.0, 0.5, 0.25)
"""The loudest microphone, then 6 and 12 dB quieter."""
TRIALS = 3 if os.environ.get("CI") else 20
"""20 trials (the issue's bar: 19 right) outside CI; CI runs 3 (each speaker the loudest once,
all of them right: a reduced run that still fails on one wrong answer)."""
QUESTION = "what is the capital of France"
IDLE = STATUS_LINES[State.IDLE].format(wake="hey jarvis")


def _config(tmp: Path, name: str, sim_url: str, ca: Path, port: int) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f'state_dir = "{tmp / name}"\n'
        f'[live]\nbase_url = "{sim_url}"\nca_file = "{ca}"\n'
        '[gpio]\npin_factory = "mock"\n'
        "[conversation]\nfollow_up_s = 1.0\nno_speech_timeout_s = 4.0\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nspeaker_id = "{name}"\n'
    )
    return path


class Speaker:
    """One daemon process and what it told systemd (STATUS= lines on its own notify socket)."""

    def __init__(self, tmp: Path, name: str, card: VirtualSoundCard, cfg: Path) -> None:
        self.name, self.card = name, card
        self.sock_path = tmp / f"notify-{name}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.settimeout(0.05)
        self.log = tmp / f"{name}.log"
        env = {**card.env, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(Path.cwd()),
               "NOTIFY_SOCKET": str(self.sock_path)}  # fmt: skip
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "device", "--config", str(cfg), "run"],
                env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        self.statuses: list[str] = []
        self.ready = False

    def poll(self) -> None:
        with contextlib.suppress(TimeoutError, BlockingIOError):
            while True:
                msg = self.sock.recv(4096).decode()
                for line in msg.split("\n"):
                    if line == "READY=1":
                        self.ready = True
                    elif line.startswith("STATUS="):
                        self.statuses.append(line[7:])
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")

    @property
    def idle(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == IDLE

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.sock.close()


def _wait(speakers: list[Speaker], cond: object, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for s in speakers:
            s.poll()
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {[s.statuses[-3:] for s in speakers]}")


def retained(port: int, topic: str, within: float = 2.0) -> str | None:
    """The retained message of a topic, as Home Assistant would read it (None: there is none)."""
    import paho.mqtt.client as mqtt

    got: list[str] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload).decode())
    client.connect("127.0.0.1", port)
    client.subscribe(topic)
    client.loop_start()
    try:
        deadline = time.monotonic() + within
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0] if got else None


def ask_all(
    speakers: list[Speaker], sim: LiveSimulator, clip: np.ndarray, loudest: int
) -> tuple[list[str], list[ConnectionRecord]]:
    """Play the question into every microphone, `loudest` at full level; wait until a
    conversation ran and all are idle. Returns who left idle and the new connections."""
    gains = [GAINS[(i - loudest) % len(NAMES)] for i in range(len(NAMES))]
    marks = [len(s.statuses) for s in speakers]
    conns = len(sim.connections)
    players = [
        s.card.feed_mic((clip * g).astype(np.int16), MIC_RATE)
        for s, g in zip(speakers, gains, strict=True)
    ]
    _wait(speakers, lambda: len(sim.connections) > conns, 30, "a connection")
    _wait(speakers, lambda: all(s.idle for s in speakers), 60, "idle again")
    for p in players:
        p.wait(30)
    active = [s.name for s, m in zip(speakers, marks, strict=True)
              if any(line != IDLE for line in s.statuses[m:])]  # fmt: skip
    return active, sim.connections[conns:]


def test_three_speakers_one_wake_word_exactly_the_loudest_answers(
    tmp_path: Path, speech: SpeechFactory
) -> None:
    question = speech("Hey Jarvis, what is the capital of France?")
    clip = np.concatenate([np.zeros(int(0.5 * MIC_RATE), np.int16), question])
    certs = ensure_certs(tmp_path / "certs")
    outcomes: list[tuple[str, list[str], int, list[str]]] = []
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Broker(tmp_path / "broker"))
        sim_thread = SimulatorThread(certs, api_keys=[KEY])
        sim = stack.enter_context(sim_thread)
        sim_thread.call(teach, sim, QUESTION, question)
        cards = [stack.enter_context(VirtualSoundCard()) for _ in NAMES]
        speakers = [
            Speaker(tmp_path, n, c, _config(tmp_path, n, sim.base_url, certs.ca, broker.port))
            for n, c in zip(NAMES, cards, strict=True)
        ]
        stack.callback(lambda: [s.stop() for s in speakers])
        _wait(speakers, lambda: all(s.ready and s.idle for s in speakers), 180, "READY")
        time.sleep(3)  # connected to the broker (the journal says so), audio flowing
        for trial in range(TRIALS):
            loudest = trial % len(NAMES)
            active, new = ask_all(speakers, sim, clip, loudest)
            outcomes.append((NAMES[loudest], active, len(new), [h for c in new for h in c.heard]))

        # The broker dies: every speaker answers its own wake word (here all three at once).
        broker.stop()
        time.sleep(1.0)  # (a speaker that had not noticed yet fails to send its claim: alone too)
        active, new = ask_all(speakers, sim, clip, 0)
        assert sorted(active) == sorted(NAMES) and len(new) == 3, (active, len(new))
        # It comes back (empty: no retained messages): they reconnect by themselves (backoff),
        # say they are online again, and one answers again.
        broker.start()
        _wait(speakers, lambda: all(retained(broker.port, f"livespeaker/{n}/availability", 0.3)
                                    == "online" for n in NAMES), 60, "reconnection")  # fmt: skip
        time.sleep(0.5)
        active, new = ask_all(speakers, sim, clip, 1)
        assert active == [NAMES[1]] and len(new) == 1, (active, len(new))
        # What each speaker says of its wake words (its retained state, as Home Assistant reads it).
        wake = {n: json.loads(retained(broker.port, f"livespeaker/{n}/state") or "{}")["wake_words"]
                for n in NAMES}  # fmt: skip
        # A speaker that dies without a goodbye: the broker publishes its last will.
        assert retained(broker.port, "livespeaker/bedroom/availability") == "online"
        speakers[2].proc.kill()
        speakers[2].proc.wait(10)
        deadline = time.monotonic() + 10  # the broker sees the connection drop at once
        while retained(broker.port, "livespeaker/bedroom/availability") != "offline":
            assert time.monotonic() < deadline, "no last will"
            time.sleep(0.1)
    right = [o for o in outcomes if o[1] == [o[0]] and o[2] == 1 and o[3] == [QUESTION]]
    yielded = sum(w["stood_back"] for w in wake.values())
    wrong = [o for o in outcomes if o not in right]
    print(f"\nthree speakers: {len(right)}/{TRIALS} trials answered once by the loudest with the "
          f"whole question; {yielded} wake words heard by a quieter speaker that stood back; "
          f"per speaker: {wake}; wrong trials (loudest, active, connections, heard): {wrong}")  # fmt: skip
    # The quieter speakers heard it too (else the arbitration was never put to the test), every
    # speaker answered alone while the broker was down.
    assert yielded >= TRIALS
    assert sum(w["answered"] for w in wake.values()) == sum(len(o[1]) for o in outcomes) + 1
    assert all(w["alone"] == 1 for w in wake.values())
    for w in wake.values():  # each win waited the configured window for the others' claims
        assert not w["answered"] or w["arbitration_ms_median"] >= 150, wake
    assert len(right) >= (TRIALS if TRIALS < 20 else TRIALS - 1), (
        f"wrong trials (loudest, active, connections, heard): {wrong}"
    )
