"""The upload ledger file, `livespeaker privacy` and doctor's summary (no network, real files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from device.cli import main
from device.config import Config, PrivacyConfig
from device.doctor.context import DoctorContext
from device.doctor.privacy import check
from device.doctor.result import CheckStatus
from device.events import Opened, Trigger, WakeDetected
from device.live.handles import HandleStore
from device.privacy.cmd import table
from device.privacy.ledger import Ending, Ledger, Upload
from device.statefile import problems

pytestmark = pytest.mark.unit
NOW = 1_800_000_000.0
DAY = 86400.0


def upload(at: float, audio_s: float = 2.0, conversation: str = "c1", **kw: object) -> Upload:
    fields: dict[str, object] = {
        "opened_at": at,
        "conversation": conversation,
        "connection": 1,
        "resumed": False,
        "duration_s": 5.0,
        "audio_bytes": int(audio_s * 32000),
        "bytes_up": int(audio_s * 32000),
        "bytes_down": 1000,
        "ended": Ending.CLOSED,
    }
    fields.update(kw)
    return Upload.make(Opened(Trigger.WAKE_WORD, "hey_jarvis", 0.97, "alice"), **fields)  # type: ignore[arg-type]


def test_records_round_trip_without_words(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, clock=lambda: NOW)
    ledger.add(upload(NOW - 10, 3.25))
    ledger.add(
        Upload.make(
            Opened(Trigger.BUTTON), **{**_plain(NOW), "ended": Ending.FAILED, "error": "quota"}
        )
    )  # type: ignore[arg-type]
    low = WakeDetected("hey_jarvis", 0.31, 16000, second_stage=True)  # below the threshold
    ledger.add(Upload.make(Opened.by_wake(low), **{**_plain(NOW), "ended": Ending.CLOSED}))  # type: ignore[arg-type]
    micro = WakeDetected("hey_jarvis", 0.02, 16000, micro=True)  # microWakeWord's model heard it
    ledger.add(Upload.make(Opened.by_wake(micro), **{**_plain(NOW), "ended": Ending.CLOSED}))  # type: ignore[arg-type]
    back = Ledger(tmp_path).records()  # a fresh reader: from the disk
    got = [(r.trigger, r.voice, r.second_stage, r.micro, r.audio_s, r.ended, r.error) for r in back]
    assert got == [
        (Trigger.WAKE_WORD, "alice", False, False, 3.25, Ending.CLOSED, None),
        (Trigger.BUTTON, None, False, False, 0.0, Ending.FAILED, "quota"),
        (Trigger.WAKE_WORD, None, True, False, 0.0, Ending.CLOSED, None),
        (Trigger.WAKE_WORD, None, False, True, 0.0, Ending.CLOSED, None),
    ]
    lines = (tmp_path / "upload-ledger.jsonl").read_text().splitlines()
    assert set(json.loads(lines[0])) == {
        "opened_at", "conversation", "connection", "trigger", "wake_word", "score", "voice",
        "second_stage", "micro", "resumed", "duration_s", "audio_s", "bytes_up", "bytes_down", "ended",
        "error", "cause",
    }  # fmt: skip
    assert "hey_jarvis 0.31 (2nd stage)" in table(back)
    assert "hey_jarvis 0.02 (microWakeWord)" in table(back)
    # A line written before second_stage and micro were recorded still reads (as False).
    old = json.loads(lines[0])
    del old["second_stage"], old["micro"]
    assert not Upload.from_json(json.dumps(old)).second_stage
    assert not Upload.from_json(json.dumps(old)).micro
    assert os.stat(tmp_path / "upload-ledger.jsonl").st_mode & 0o777 == 0o600


def _plain(at: float) -> dict[str, object]:
    return {
        "opened_at": at,
        "conversation": "c2",
        "connection": 1,
        "resumed": False,
        "duration_s": 1.0,
        "audio_bytes": 0,
        "bytes_up": 0,
        "bytes_down": 0,
    }


def test_pruned_on_write_by_age_then_by_size(tmp_path: Path) -> None:
    now = NOW
    ledger = Ledger(tmp_path, PrivacyConfig(ledger_days=30, ledger_max_kb=16), clock=lambda: now)
    ledger.add(upload(NOW - 31 * DAY, conversation="old"))
    ledger.add(upload(NOW - 29 * DAY, conversation="kept"))
    assert [r.conversation for r in Ledger(tmp_path).records()] == ["kept"]
    for i in range(200):  # ~60 KB of records against a 16 KiB bound: the oldest go
        ledger.add(upload(NOW + i, conversation=f"n{i:03}"))
    size = (tmp_path / "upload-ledger.jsonl").stat().st_size
    kept = [r.conversation for r in Ledger(tmp_path).records()]
    assert 15 * 1024 < size <= 16 * 1024
    assert kept[-1] == "n199" and kept == [f"n{i:03}" for i in range(200 - len(kept), 200)]


def test_an_unwritable_state_dir_keeps_records_in_memory_and_never_raises(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "state"
        blocker.write_text("a file where the directory should be")  # root ignores chmod
    else:
        blocker = tmp_path / "state"
        blocker.mkdir(mode=0o500)
    ledger = Ledger(blocker / "sub" if blocker.is_file() else blocker, clock=lambda: NOW)
    ledger.add(upload(NOW))
    assert len(ledger.records()) == 1
    assert problems.summary(ledger.path.parent) is not None
    blocker.unlink() if blocker.is_file() else blocker.chmod(0o700)
    ledger.add(upload(NOW + 1, conversation="c2"))
    assert [r.conversation for r in Ledger(ledger.path.parent).records()] == ["c1", "c2"]
    assert problems.summary(ledger.path.parent) is None


def test_unreadable_lines_are_skipped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, clock=lambda: NOW)
    ledger.add(upload(NOW))
    with (tmp_path / "upload-ledger.jsonl").open("a") as f:
        f.write("not json\n{}\n")
    ledger.add(upload(NOW + 1, conversation="c2"))
    assert [r.conversation for r in Ledger(tmp_path).records()] == ["c1", "c2"]


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{extra}\n')
    return path


def test_privacy_command_table_json_and_forget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    state = tmp_path / "state"
    now = time.time()
    ledger = Ledger(state)
    ledger.add(upload(now - 3600, 130.0, conversation="a"))
    ledger.add(upload(now - 1800, 60.0, conversation="a", connection=2, resumed=True))
    ledger.add(upload(now - 2 * DAY, 500.0, conversation="b"))
    HandleStore(state).save("h-secret", "gemini-3.8-live")
    config = str(_config(tmp_path))

    assert main(["--config", config, "privacy"]) == 0
    out = capsys.readouterr().out
    assert out.count("hey_jarvis 0.97 (alice)") == 3 and "+resumed" in out
    assert "130.00 s" in out and "part 2 of conversation a" in out
    assert "1 conversations in the last 24 h, 3 min 10 s of audio sent" in out

    assert main(["--config", config, "privacy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["audio_s"] for d in doc] == [500.0, 130.0, 60.0]  # oldest first

    assert main(["--config", config, "privacy", "forget"]) == 0
    out = capsys.readouterr().out
    assert "forgot the upload ledger and the saved conversation" in out
    assert not ledger.path.exists() and not (state / "live-resumption.json").exists()
    assert HandleStore(state).load() is None
    assert main(["--config", config, "privacy", "forget"]) == 0
    assert "no saved conversation (there was none)" in capsys.readouterr().out


@pytest.mark.parametrize("log_transcripts", [False, True])
def test_doctor_summarises_the_ledger_and_warns_while_transcripts_are_logged(
    tmp_path: Path, log_transcripts: bool
) -> None:
    import time

    now = time.time()
    ledger = Ledger(tmp_path)
    for i in range(12):
        ledger.add(upload(now - 3600 - i, 190.0 / 12, conversation=f"c{i}"))
    ledger.add(upload(now - 2 * DAY, 99.0, conversation="yesterday"))
    cfg = Config.model_validate(
        {"state_dir": str(tmp_path), "privacy": {"log_transcripts": log_transcripts}}
    )
    result = check(DoctorContext(cfg))
    assert result.detail.startswith("12 conversations in the last 24 h, 3 min 10 s of audio sent")
    assert result.numbers["conversations_24h"] == 12
    if log_transcripts:
        assert result.status is CheckStatus.WARN and "log_transcripts is on" in result.detail
    else:
        assert result.status is CheckStatus.PASS and "no transcripts logged" in result.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write as root (CI runs as root)")
def test_written_by_root_the_file_stays_the_services(tmp_path: Path) -> None:
    """Provisioning runs `doctor` as root: the service (its own user) must still read and write."""
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 4242, 4242)
    Ledger(state, clock=lambda: NOW).add(upload(NOW))
    st = (state / "upload-ledger.jsonl").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4242, 4242, 0o600)


async def test_on_the_event_loop_the_write_runs_on_a_worker_thread(tmp_path: Path) -> None:
    """An SD card's fsync can take hundreds of ms: never on the loop (a failing write shows where
    the write ran: the state-dir problem is reported from that thread)."""
    import asyncio
    import threading

    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    threads: list[threading.Thread] = []

    def note() -> None:
        threads.append(threading.current_thread())

    problems.add_listener(note)
    try:
        ledger = Ledger(blocker / "sub", clock=lambda: NOW)
        ledger.add(upload(NOW))
        assert len(ledger.records()) == 1  # at once, before any write
        for _ in range(500):  # bounded: 5 s
            if threads:
                break
            await asyncio.sleep(0.01)
    finally:
        problems.remove_listener(note)
    assert threads[0] is not threading.main_thread()
