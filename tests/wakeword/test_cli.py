"""`livespeaker wakeword test` on WAV files and `livespeaker wakeword listen` on the virtual mic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device.cli import main
from device.simhw.pulse import VirtualSoundCard, write_wav
from tests.wakeword import evalset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wavs")
    wake, _ = evalset.wake_then_question("en-us", 160, 50, "what time is it")
    files = {
        "wake": (wake, 16000),
        "other": (evalset.say("the bus driver cleaned the kitchen window"), 16000),
    }
    out = {}
    for name, (audio, rate) in files.items():
        out[name] = d / f"{name}.wav"
        write_wav(out[name], audio, rate)
    # the same wake word at 48 kHz: resampled on reading
    import soxr

    hi = soxr.resample(wake.astype(np.float32), 16000, 48000)
    out["wake48k"] = d / "wake48k.wav"
    write_wav(out["wake48k"], np.clip(hi, -32768, 32767).astype(np.int16), 48000)
    return out


def test_wakeword_test_prints_peak_and_detection(
    wavs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["wakeword", "test", str(wavs["wake"]), str(wavs["wake48k"])])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        peak = float(line.split("peak ")[1].split()[0])
        assert peak > 0.9
        micro = float(line.split("(microWakeWord ")[1].split()[0])  # its model's peak beside it
        assert 0.0 <= micro <= 1.0
        print(line)
        assert "detected at" in line and "not detected" not in line


def test_wakeword_test_exits_1_when_a_file_never_fires(
    wavs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["wakeword", "test", str(wavs["other"])])
    out = capsys.readouterr().out
    assert rc == 1
    assert "not detected" in out


def test_wakeword_test_bad_model_is_a_config_error(
    wavs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["wakeword", "test", "--model", "hey_siri", str(wavs["wake"])])
    assert rc == 78
    assert "wakeword.model" in capsys.readouterr().err


def test_wakeword_listen_shows_scores_and_detects_on_the_microphone(
    sound_card: VirtualSoundCard, wavs: dict[str, Path]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "device", "wakeword", "listen", "--seconds", "240"],
        env={**sound_card.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(iter(lambda: proc.stdout.read1(4096), b"")))  # type: ignore[union-attr]
    reader.start()
    text = lambda: b"".join(out).decode(errors="replace")  # noqa: E731
    try:
        deadline = time.monotonic() + 180
        while "] 0." not in text() and time.monotonic() < deadline:  # the meter is running
            assert proc.poll() is None, text()
            time.sleep(0.2)
        assert "] 0." in text(), text()
        assert "microWakeWord 0." in text(), text()[-500:]
        # play the wake word until it is heard (a new PulseAudio client can start late)
        while "hey_jarvis (score" not in text() and time.monotonic() < deadline:
            sound_card.play_into_mic(wavs["wake"]).wait(30)
            time.sleep(1.0)
        assert "hey_jarvis (score" in text(), text()[-2000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()
