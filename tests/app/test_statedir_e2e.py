"""A full or read-only state_dir on the rig: a real tmpfs (root, like CI), the real daemon.

Conversations go on (the handle kept in memory, the next wake-up resumes it), the volume set by
the model holds, STATUS= and the journal name the directory, and `doctor` reports it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.app.states import State
from device.audio.volume import VolumeStore
from device.service import Notifier
from device.simhw.pulse import VirtualSoundCard
from device.simulator import protocol
from device.simulator.server import LiveSimulator
from tests.app.harness import running_daemon
from tests.conftest import SIM_API_KEY, SpeechFactory, sim_config
from tests.service.notify_socket import NotifySocket

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _mount_unwritable(d: Path, how: str) -> str:
    """Mount a 64 KiB tmpfs on d and make it full or read-only; returns the errno text."""
    d.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(d)], check=True
    )
    if how == "full":
        subprocess.run(["dd", "if=/dev/zero", f"of={d / 'filler'}", "bs=4k"], capture_output=True)
        with pytest.raises(OSError):  # really full
            (d / "probe").write_text("x" * 8192)
        (d / "probe").unlink()
        return "No space left on device"
    subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    return "Read-only file system"


def _doctor_state(tmp_path: Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """`livespeaker doctor --json` with only the state check."""
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{state_dir}"\n')
    others = ("audio_devices", "microphone", "speaker", "wakeword", "gpio", "api")
    return subprocess.run(
        [sys.executable, "-m", "device", "--config", str(config), "doctor", "--json"]
        + [f"--skip={c}" for c in others],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=["full", "read_only"])
def unwritable_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    d = tmp_path / "state"
    why = _mount_unwritable(d, request.param)
    try:
        yield d, why
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


async def test_unwritable_state_dir_keeps_conversations_going(
    sound_card: VirtualSoundCard,
    simulator: LiveSimulator,
    speech: SpeechFactory,
    tmp_path: Path,
    *,
    unwritable_state: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state_dir, why = unwritable_state
    question = speech("What is the capital of France?")
    simulator.register_utterance("what is the capital of France", question)
    follow_up = speech("Could you turn it down a bit?")
    simulator.register_utterance("turn it down", follow_up)
    recall = speech("What did I ask before?")
    simulator.register_utterance("what did I ask before", recall)
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(
        update={
            "state_dir": str(state_dir),
            "conversation": cfg.conversation.model_copy(update={"follow_up_s": 4.0}),
        }
    )
    warning = f"warning: cannot write to {state_dir}: {why}"
    with NotifySocket() as ns:
        monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
        async with running_daemon(
            cfg, sound_card, simulator, SIM_API_KEY, notifier=Notifier()
        ) as rig:
            await ns.until(lambda m: any("READY" in x.fields for x in m), 30, "READY")
            # Asked and answered; the handle that follows cannot be written.
            await rig.ask_by_button(question)
            mark = len(rig.seen)
            await rig.wait_state(State.LISTENING, 30, since=mark)
            # The follow-up (no wake word) is answered too: a tool call, then speech.
            mark = len(rig.seen)
            rig.play(follow_up)
            await rig.wait_state(State.RESPONDING, 30, since=mark)
            mark = len(rig.seen)
            await rig.wait_state(State.LISTENING, 30, since=mark)
            await rig.wait_state(State.IDLE, 30, since=mark)  # silence ends it
            assert State.ERROR not in rig.states(), rig.states()
            # STATUS= names the directory and why, next to the state.
            await ns.until(
                lambda m: any(warning in x.fields.get("STATUS", "") for x in m), 10, warning
            )
            # The next wake-up resumes the conversation from the handle kept in memory.
            t0 = time.monotonic()
            await rig.ask_by_button(recall)
            print(f"third question answered {time.monotonic() - t0:.2f} s after the press")
            assert len(simulator.connections) == 2
            first, second = simulator.connections
            assert first.handles and second.resumed_from == first.handles[-1]
            # The resumed session carries both earlier turns (whether each question was heard
            # word for word is test_conversation_e2e's subject, not this test's).
            history = simulator.histories.get(second.resumed_from, ())
            assert len(history) >= 2 and "turn it down" in history, history
            assert State.ERROR not in rig.states(), rig.states()
            # The volume the model set holds in this process (also for a reload's new speaker).
            assert VolumeStore(cfg.state_dir, cfg.audio.volume).load() == 30
    responses = [r for f in first.frames if (r := protocol.pick(f, "tool_response")) is not None]
    (fr,) = protocol.pick(responses[0], "function_responses")
    assert fr["response"] == {"volume": 30, "previous": 70}
    # The journal: a warning that names the directory.
    assert any(
        r.levelname == "WARNING" and str(state_dir) in r.getMessage() for r in caplog.records
    )
    # Nothing reached the disk (a restart would start from defaults), and doctor says so.
    assert sorted(p.name for p in state_dir.iterdir()) == (["filler"] if "space" in why else [])
    doc = await asyncio.to_thread(_doctor_state, tmp_path, state_dir)
    assert doc.returncode == 1, doc.stderr
    report = json.loads(doc.stdout)
    assert report["failed"] == ["state"]
    (state,) = [c for c in report["checks"] if c["name"] == "state"]
    assert str(state_dir) in state["detail"] and why in state["detail"], state
