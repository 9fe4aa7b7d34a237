"""SIGHUP with a config that validates but cannot be built, against the real `livespeaker run`.

A wake word model file that does not exist, or an audio device name that matches nothing: the new
config is refused before the running parts are touched. The process stays up (no exit 78: systemd
would not restart it), keeps answering, STATUS= and the journal say why; a good config afterwards
reloads as usual and clears the note.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard
from tests.service.notify_socket import Message
from tests.service.test_daemon_notify import IDLE, Daemon, _statuses, start_daemon

pytestmark = pytest.mark.integration

__all__ = ["start_daemon"]  # the fixture


def _refused(msgs: list[Message], needle: str) -> bool:
    return any("config reload refused" in s and needle in s for s in _statuses(msgs))


def _reload_refused(
    proc: Daemon, config: Path, good: str, extra: str, needle: str
) -> tuple[float, str]:
    """Write good+extra, SIGHUP; wait for the refusal in STATUS=. Returns (seconds, status)."""
    daemon, ns, _ = proc
    config.write_text(good + extra)
    mark = len(ns.snapshot())
    t0 = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    msgs = ns.wait_for(lambda m: _refused(m[mark:], needle), 60, f"reload refused ({needle})")
    took = time.monotonic() - t0
    status = next(s for s in _statuses(msgs[mark:]) if "config reload refused" in s)
    assert not [m for m in msgs[mark:] if "RELOADING" in m.fields], "the parts were torn down"
    return took, status


def test_reload_with_an_unbuildable_config_keeps_the_running_parts(
    start_daemon: Callable[[str], Daemon],
    sound_card: VirtualSoundCard,
    speech_wav: Callable[..., Path],
    tmp_path: Path,
) -> None:
    daemon = start_daemon("")
    proc, ns, log = daemon
    ns.wait_for(lambda m: any("READY" in x.fields for x in m), 120, "READY=1")
    config = tmp_path / "config.toml"
    good = config.read_text()

    missing = tmp_path / "no-such-model.tflite"
    took, status = _reload_refused(
        daemon, config, good, f'[wakeword]\nmodel = "{missing}"\n', str(missing)
    )
    print(f"missing model refused {took:.2f} s after SIGHUP: {status!r}")
    assert status.startswith(IDLE)

    took, status = _reload_refused(
        daemon, config, good, '[audio]\noutput_device = "NoSuchSpeaker"\n', "NoSuchSpeaker"
    )
    print(f"unknown output device refused {took:.2f} s after SIGHUP: {status!r}")

    # Still the same process, still fed by audio (watchdog pings), still answering.
    assert proc.poll() is None, f"daemon exited with {proc.returncode}"
    n = len(ns.watchdog_pings())
    ns.wait_for(lambda _: len(ns.watchdog_pings()) >= n + 2, 30, "pings after the refusals")
    mark = len(ns.snapshot())
    sound_card.play_into_mic(speech_wav("hey jarvis, what time is it?")).wait(30)

    def answered_and_idle(m: list[Message]) -> bool:
        after = _statuses(m[mark:])
        return any(s.startswith("Answering") for s in after) and after[-1].startswith(IDLE)

    ns.wait_for(answered_and_idle, 90, "a conversation after the refused reloads")
    text = log.read_text(errors="replace")
    assert "new configuration refused" in text and str(missing) in text
    assert "NoSuchSpeaker" in text

    # A pin factory that cannot be made here (no GPIO chip) is only found while rebuilding: the
    # parts were torn down already, so the configuration that ran before is built again.
    config.write_text(good.replace('pin_factory = "mock"', 'pin_factory = "lgpio"'))
    mark = len(ns.snapshot())
    t0 = time.monotonic()
    proc.send_signal(signal.SIGHUP)
    msgs = ns.wait_for(
        lambda m: any("READY" in x.fields for x in m[mark:]) and _refused(m[mark:], "lgpio"),
        120,
        "a failed rebuild, then READY with the old configuration",
    )
    print(f"failed rebuild back to READY in {time.monotonic() - t0:.2f} s")
    ready = next(m for m in msgs[mark:] if "READY" in m.fields)
    assert "config reload refused" in ready.fields["STATUS"], ready.fields
    assert proc.poll() is None

    # A good config reloads (RELOADING=1 ... READY=1) and the note goes away.
    config.write_text(good)
    mark = len(ns.snapshot())
    proc.send_signal(signal.SIGHUP)
    msgs = ns.wait_for(
        lambda m: (
            any("RELOADING" in x.fields for x in m[mark:])
            and any("READY" in x.fields for x in m[mark:])
        ),
        120,
        "RELOADING then READY",
    )
    ready = next(m for m in msgs[mark:] if "READY" in m.fields)
    assert ready.fields["STATUS"] == IDLE
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def _model_fds(pid: int) -> int:
    """Open descriptors on wake word model files (each loaded model keeps its files open)."""
    out = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            out += fd.readlink().suffix in (".tflite", ".onnx")
    return out


def test_reloads_release_the_parts_they_replace(start_daemon: Callable[[str], Daemon]) -> None:
    """Each reload builds new parts (a wake word model of ~28 MiB among them); the old ones must
    go at once, not whenever a full garbage collection happens to run (maybe never)."""
    proc, ns, _ = start_daemon("")
    ns.wait_for(lambda m: any("READY" in x.fields for x in m), 120, "READY=1")
    at_start = _model_fds(proc.pid)
    assert at_start > 0
    for i in range(3):
        n = len(ns.snapshot())
        proc.send_signal(signal.SIGHUP)
        ns.wait_for(lambda m, n=n: any("READY" in x.fields for x in m[n:]), 120, f"reload {i}")
    time.sleep(1.0)
    assert _model_fds(proc.pid) == at_start, "old wake word models are still loaded"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
