"""The real unit under real systemd: a Debian container runs `livespeaker run` as it would on a Pi.

One container (module scope) goes through the service's life: it starts hardened and ready, holds
a conversation with the Live API simulator on the host's loopback through the virtual sound card,
is restarted after SIGKILL and after being frozen (SIGSTOP -> watchdog), reloads on SIGHUP, stops
gracefully, and does not loop on a bad config (exit 78). Test-only settings (the sound server,
a short watchdog) live in a drop-in; the unit file is installed untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.simhw.pulse import VirtualSoundCard
from device.simulator.certs import CertFiles
from device.simulator.server import LiveSimulator, SimulatorThread
from tests.conftest import SIM_API_KEY
from tests.system import speaker_host as host
from tests.system.container import Container, booted

pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]

WATCHDOG_S = 4  # test drop-in: the unit's 30 s would make the frozen-process test slow
IDLE = "Listening for 'hey jarvis'"
CA_PATH = "/etc/livespeaker/simulator-ca.pem"


@dataclass
class Speaker:
    """The container with livespeaker installed and started, plus the simulator it talks to."""

    c: Container
    sim: LiveSimulator

    def show(self, prop: str) -> str:
        """One property of the unit (`systemctl show -p PROP --value`)."""
        return self.c.run(f"systemctl show -p {prop} --value livespeaker").stdout.strip()

    def journal(self, *args: str) -> str:
        """This boot's journal of the unit (messages only)."""
        return self.c.run("journalctl -b -u livespeaker -o cat --no-pager " + " ".join(args)).stdout

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
        """Poll check() every 0.5 s; fail with the unit's state and journal tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        state = self.c.run("systemctl status --no-pager livespeaker", check=False).stdout
        pytest.fail(f"timed out waiting for {what}\n{state}\n{self.journal('-n', '60')}")

    def wait_running(self, old_pid: str | None = None, timeout: float = 120.0) -> str:
        """Active and idle (READY sent), with a main pid other than old_pid; returns the pid."""

        def ok() -> bool:
            pid = self.show("MainPID")
            return (
                self.show("ActiveState") == "active"
                and pid not in ("0", old_pid)
                and self.show("StatusText") == IDLE
            )

        self.wait(f"a running service (not pid {old_pid})", ok, timeout)
        return self.show("MainPID")


def config_toml(sim: LiveSimulator) -> str:
    return (
        f'[live]\nbase_url = "{sim.base_url}"\nca_file = "{CA_PATH}"\n'
        '[gpio]\npin_factory = "mock"\n'
        "[conversation]\nfollow_up_s = 1.0\n"
        "[timers]\nring_timeout_s = 3.0\n"  # no button in here: the ring stops by itself
    )


@pytest.fixture(scope="module")
def speaker(
    rootfs: Path,
    sound_card: VirtualSoundCard,
    tls_certs: CertFiles,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Speaker]:
    work = tmp_path_factory.mktemp("speaker-host")
    build = host.build_project(work / "build")
    module = host.attach_sound_card(sound_card, work / "pulse")
    try:
        with (
            SimulatorThread(
                tls_certs, api_keys=[SIM_API_KEY], realtime_factor=20.0, hold_turn_complete=False
            ) as sim,
            booted(work, binds=host.binds(build, work / "pulse"), ro_binds=host.ro_binds()) as c,
        ):
            host.install(c, build)
            c.copy_in(tls_certs.ca, CA_PATH)
            host.write_config(c, config_toml(sim))
            host.write_api_key(c, SIM_API_KEY)
            host.write_dropin(
                c,
                "50-test",
                "[Service]\n"
                f"Environment=PULSE_SERVER=unix:{host.PULSE_DIR}/native\n"
                f"WatchdogSec={WATCHDOG_S}\nTimeoutAbortSec=3\nRestartSec=1\n",
            )
            # Type=notify: `systemctl start` returns only once READY=1 arrived.
            c.run("systemctl enable --now livespeaker", timeout=180)
            yield Speaker(c, sim)
    finally:
        host.detach_sound_card(sound_card, module)


def test_starts_ready_hardened_and_as_its_own_user(speaker: Speaker) -> None:
    s = speaker
    assert s.c.run("systemctl is-active livespeaker").stdout.strip() == "active"
    assert s.show("StatusText") == IDLE
    assert s.show("NRestarts") == "0"
    pid = s.show("MainPID")
    assert s.c.run(f"ps -o user= -p {pid}").stdout.strip() == "livespeaker"
    # The unit as installed (real ExecStart binary) verifies clean, and the running service's
    # exposure is what the offline check promised.
    r = s.c.run("systemd-analyze verify /etc/systemd/system/livespeaker.service", check=False)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")
    sec = s.c.run("systemd-analyze security livespeaker --no-pager", check=False).stdout
    score = float(sec.rsplit("Overall exposure level for livespeaker.service:", 1)[1].split()[0])
    assert score <= 2.0, sec
    # StateDirectory= made the state dir, private to the service (UMask/StateDirectoryMode).
    assert s.c.run("stat -c '%U %a' /var/lib/livespeaker").stdout.split() == ["livespeaker", "700"]
    journal = s.journal()
    assert "microphone open" in journal and "watchdog: pinging every 2.0 s" in journal
    assert SIM_API_KEY not in journal


def test_answers_a_question_under_the_hardened_unit(
    speaker: Speaker, sound_card: VirtualSoundCard, speech_wav: Callable[..., Path]
) -> None:
    """Wake word model, mic and speaker callbacks, TLS to the simulator: all under the sandbox."""
    s = speaker
    before = len(s.sim.connections)
    sound_card.play_into_mic(speech_wav("hey jarvis, what time is it?")).wait(30)
    s.wait("a turn in the journal", lambda: "turn completed" in s.journal(), 90)
    assert len(s.sim.connections) > before
    # The only place the key exists is /etc/livespeaker/api-key (root 0600): LoadCredential= works.
    assert s.sim.connections[-1].key == SIM_API_KEY
    s.wait_running()
    # Structured fields and syslog priorities reach the journal.
    assert "-> responding" in s.journal("STATE=responding")
    assert "turn completed" in s.journal("-p", "info")
    assert "turn completed" not in s.journal("-p", "warning")
    rss_kib = int(s.c.run(f"ps -o rss= -p {s.show('MainPID')}").stdout)
    print(f"daemon RSS after a conversation: {rss_kib / 1024:.0f} MiB")


def test_restarts_after_sigkill(speaker: Speaker) -> None:
    s = speaker
    pid, restarts = s.show("MainPID"), int(s.show("NRestarts"))
    s.c.run(f"kill -KILL {pid}")
    s.wait_running(old_pid=pid)
    assert int(s.show("NRestarts")) == restarts + 1
    assert "status=9/KILL" in s.c.run("journalctl -b -u livespeaker --no-pager").stdout


def test_a_timer_survives_sigkill_and_rings_on_time(
    speaker: Speaker, sound_card: VirtualSoundCard, speech: Callable[..., npt.NDArray[np.int16]]
) -> None:
    """Asked for by voice, killed (SIGKILL) right after, restarted by systemd: the timer rings
    when it was due, heard at the speaker monitor, and the ring stops by itself."""
    import json
    import threading

    from tests.app.test_conversation_e2e import register_tails, speech_start
    from tests.timers.rig import RATE, RecordingClock, ring_span

    s = speaker
    ask = speech("Hey Jarvis, set a timer for twenty seconds.")
    register_tails(s.sim, "set a timer for twenty seconds", ask, speech_start(ask, 8000))
    s.wait_running()
    sound_card.feed_mic(np.concatenate([np.zeros(11200, np.int16), ask]), 16000).wait(30)
    s.wait("the timer set", lambda: "tool set_timer" in s.journal(), 60)
    pid = s.show("MainPID")
    s.c.run(f"kill -KILL {pid}")
    with sound_card.record_speaker(RATE) as rec:
        rec.wait_until_flowing()
        clock, stop = RecordingClock(rec), threading.Event()

        def sample() -> None:
            while not stop.is_set():
                clock.sample()
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, name="recording-clock")
        sampler.start()
        try:
            s.wait("ringing", lambda: s.show("StatusText").startswith("Ringing"), 60)
            s.wait("the ring to stop by itself", lambda: s.show("StatusText") == IDLE, 20)
        finally:
            stop.set()
            sampler.join()
        audio = rec.snapshot()
    assert s.show("MainPID") != pid
    state = json.loads(s.c.path("/var/lib/livespeaker/timers.json").read_text())
    (done,) = state["history"]
    assert done["outcome"] == "rang" and done["item"]["duration_s"] == 20
    due = done["item"]["set_at"]["boottime"] + 20  # the container shares the host's kernel clocks
    span = ring_span(audio, clock)
    assert span is not None, "no ring heard"
    print(f"ring after SIGKILL and restart: {span[0] - due:+.3f} s vs set + 20 s")
    assert abs(span[0] - due) <= 0.3


def test_frozen_process_is_restarted_by_the_watchdog(speaker: Speaker) -> None:
    s = speaker
    pid, restarts = s.show("MainPID"), int(s.show("NRestarts"))
    s.c.run(f"kill -STOP {pid}")
    s.wait_running(old_pid=pid, timeout=WATCHDOG_S + 120)
    assert int(s.show("NRestarts")) == restarts + 1
    assert "Watchdog timeout" in s.c.run("journalctl -b -u livespeaker --no-pager").stdout


def test_abort_leaves_every_thread_stack_in_the_journal(speaker: Speaker) -> None:
    """What the watchdog does to a wedged but running daemon: SIGABRT, stacks logged, restart."""
    s = speaker
    pid, restarts = s.show("MainPID"), int(s.show("NRestarts"))
    s.c.run(f"kill -ABRT {pid}")
    s.wait_running(old_pid=pid)
    assert int(s.show("NRestarts")) == restarts + 1
    journal = s.journal()
    assert "Fatal Python error: Aborted" in journal
    assert 'File "/opt/livespeaker/venv/lib/' in journal  # Python frames, not just a core dump


def test_reload_rebuilds_in_process(speaker: Speaker) -> None:
    s = speaker
    pid = s.show("MainPID")
    loads = s.journal().count("wake-word model hey_jarvis")
    s.c.run("systemctl reload livespeaker", timeout=120)
    s.wait("the parts rebuilt", lambda: s.journal().count("wake-word model hey_jarvis") > loads)
    assert "SIGHUP: reloading the configuration" in s.journal()
    # The same process (RELOADING=1 ... READY=1), kept alive through the rebuild by the startup
    # pinger although this drop-in's WatchdogSec is shorter than the rebuild.
    assert s.wait_running() == pid, s.journal()[-3000:]


def test_stops_gracefully(speaker: Speaker) -> None:
    s = speaker
    t0 = time.monotonic()
    s.c.run("systemctl stop livespeaker", timeout=60)
    took = time.monotonic() - t0
    assert s.show("ActiveState") == "inactive"
    assert (s.show("Result"), s.show("ExecMainStatus")) == ("success", "0")
    assert "SIGTERM: stopping" in s.journal()
    print(f"systemctl stop took {took:.1f} s")


def test_bad_config_fails_once_without_a_restart_loop(speaker: Speaker) -> None:
    s = speaker
    good = s.c.path("/etc/livespeaker/config.toml").read_text()
    host.write_config(s.c, good + "\n[audio]\nvolume = 150\n")
    try:
        s.c.run("systemctl reset-failed livespeaker; systemctl restart livespeaker", check=False)
        s.wait("the failed state", lambda: s.show("ActiveState") == "failed", 60)
        restarts = s.show("NRestarts")
        time.sleep(5)  # RestartSec=1: a loop would have restarted several times by now
        assert s.show("ActiveState") == "failed"
        assert s.show("NRestarts") == restarts
        assert s.show("ExecMainStatus") == "78"
        assert "audio.volume" in s.journal("-p", "err")  # the reason, at priority err
    finally:
        host.write_config(s.c, good)
    s.c.run("systemctl reset-failed livespeaker; systemctl start livespeaker", timeout=180)
    s.wait_running()


def test_without_a_key_file_it_starts_and_answers_with_the_bad_key_sound(
    speaker: Speaker, sound_card: VirtualSoundCard, speech_wav: Callable[..., Path]
) -> None:
    """No /etc/livespeaker/api-key: the unit still starts (SetCredential= fallback), the wake word
    works, and a wake-up is answered with the bad-key sound (the LED and STATUS= say so too)."""
    import soxr

    from device.audio import earcons
    from device.events import MODEL_RATE, ErrorKind
    from tests.simhw.test_rig import best_correlation

    s = speaker
    key = s.c.path("/etc/livespeaker/api-key")
    saved = key.read_text()
    key.unlink()
    try:
        s.c.run("systemctl reset-failed livespeaker; systemctl restart livespeaker", timeout=180)
        pid = s.wait_running()
        assert "no API key found" in s.journal("-p", "err")
        before = len(s.sim.connections)
        with sound_card.record_speaker(48000) as rec:
            rec.wait_until_flowing()
            t0 = time.monotonic()
            sound_card.play_into_mic(speech_wav("hey jarvis, what time is it?")).wait(30)
            s.wait(
                "a bad-key error", lambda: "bad_key" in s.journal("STATE=error", "-o", "verbose")
            )
            print(f"bad-key error {time.monotonic() - t0:.1f} s after the wake-up started playing")
            time.sleep(1.5)
            heard = rec.snapshot()
        sound = np.asarray(soxr.resample(earcons.render(ErrorKind.BAD_KEY), MODEL_RATE, 48000))
        assert best_correlation(sound.astype(np.int16), heard) > 0.8
        assert len(s.sim.connections) == before  # nothing was sent anywhere without a key
        assert s.wait_running() == pid  # back to idle, same process, no restart
        rss_kib = int(s.c.run(f"ps -o rss= -p {pid}").stdout)
        print(f"daemon RSS after the bad-key answer: {rss_kib / 1024:.0f} MiB")
    finally:
        host.write_api_key(s.c, saved.strip())
    s.c.run("systemctl restart livespeaker", timeout=180)
    s.wait_running()
