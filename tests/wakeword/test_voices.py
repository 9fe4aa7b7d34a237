"""Enrolled voices: the enroll / list / forget / test commands as a user runs them, take checks,
who_can_wake, and the evaluation's offline path deciding exactly as the Detector does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.config import WakeAudience, WakewordConfig
from device.events import MIC_RATE, AudioBlock
from device.simhw.pulse import VirtualSoundCard, write_wav
from device.wakeword.detector import Detector, build_detector
from device.wakeword.enroll import BadTake, check_take, enroll
from device.wakeword.models import load_model
from device.wakeword.verifier import VoiceVerifier, voices_dir
from tests.wakeword import corpus, evaluate
from tests.wakeword.corpus import WAKE, Voice, say

pytestmark = pytest.mark.integration
ALICE = Voice("flite", "slt")
BOB = Voice("espeak", "en-gb-scotland")
TAKES = ((0.95, -1), (1.05, 1), (0.9, 1), (1.1, -1))


def livespeaker(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device", "--config", str(config), "wakeword", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _wavs(tmp: Path, voice: Voice, renditions: tuple[tuple[float, int], ...]) -> list[str]:
    out = []
    for i, (tempo, semis) in enumerate(renditions):
        path = tmp / f"{voice.name}-{i}.wav"
        write_wav(path, say(voice, WAKE, tempo, semis), MIC_RATE)
        out.append(str(path))
    return out


def _config(tmp: Path, who: str = "anyone") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{tmp / "state"}"\n[wakeword]\nwho_can_wake = "{who}"\n')
    return cfg


def test_enroll_list_test_and_forget_from_the_command_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    enrolled = livespeaker(cfg, "enroll", "--name", "alice", *_wavs(tmp_path, ALICE, TAKES))
    assert enrolled.returncode == 0, enrolled.stderr
    saved = voices_dir(tmp_path / "state") / "alice.npz"
    assert saved.is_file()
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "alice" in livespeaker(cfg, "list").stdout
    again = livespeaker(cfg, "enroll", "--name", "alice", *_wavs(tmp_path, ALICE, TAKES))
    assert again.returncode == 1 and "--force" in again.stderr

    # Another rendition of Alice with a question, in a room: detected, and as her voice.
    question, _ = corpus.Rendition(ALICE, 1.2, 2, "turn on the kitchen lights").audio()
    roomy = corpus.in_room(question, "room", seed=3)
    write_wav(tmp_path / "alice-q.wav", roomy, MIC_RATE)
    tested = livespeaker(cfg, "test", str(tmp_path / "alice-q.wav"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "voice alice" in tested.stdout

    # Enrolled-only: with nobody enrolled, Bob's clear "hey jarvis" (base score ~1.0) does not
    # wake it; with Alice enrolled, her rendition does and his still does not: he says the same
    # words (her templates match) but does not sound like her (her voiceprints do not). (How
    # often another voice passes as an enrolled one is measured by bench_wakeword_accuracy.)
    bob, _ = corpus.Rendition(BOB, 1.0, 0, "what's the weather tomorrow").audio()
    write_wav(tmp_path / "bob.wav", bob, MIC_RATE)
    assert livespeaker(cfg, "test", str(tmp_path / "bob.wav")).returncode == 0
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    refused = livespeaker(_config(nobody, "enrolled"), "test", str(tmp_path / "bob.wav"))
    assert refused.returncode == 1 and "not detected" in refused.stdout
    only = _config(tmp_path, "enrolled")
    assert livespeaker(only, "test", str(tmp_path / "alice-q.wav")).returncode == 0
    assert livespeaker(only, "test", str(tmp_path / "bob.wav")).returncode == 1

    forgot = livespeaker(cfg, "forget", "alice")
    assert forgot.returncode == 0 and not saved.exists()
    assert "no enrolled voices" in livespeaker(cfg, "list").stdout
    assert livespeaker(cfg, "forget", "alice").returncode == 1


def test_bad_takes_and_names_are_refused_with_the_reason(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    good = _wavs(tmp_path, ALICE, TAKES)
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, (say(ALICE, WAKE) * 0.003).astype(np.int16), MIC_RATE)
    res = livespeaker(cfg, "enroll", "--name", "alice", good[0], str(quiet), *good[2:])
    assert res.returncode == 1 and "take 2: too quiet" in res.stderr
    assert not voices_dir(tmp_path / "state").exists() or not any(
        voices_dir(tmp_path / "state").iterdir()
    )
    assert "at least 4" in livespeaker(cfg, "enroll", "--name", "alice", *good[:3]).stderr
    assert "voice name" in livespeaker(cfg, "enroll", "--name", "../x", *good).stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    assert livespeaker(cfg, "enroll", "--name", "alice", str(bad), *good[1:]).returncode == 2

    model = load_model("hey_jarvis")
    loud = np.clip(say(ALICE, WAKE).astype(np.int32) * 40, -32768, 32767).astype(np.int16)
    with pytest.raises(BadTake, match="clipped"):
        check_take(model, loud)
    with pytest.raises(BadTake, match="too long"):
        check_take(model, say(ALICE, "hey jarvis, what is the capital of france, and of spain"))
    with pytest.raises(BadTake, match="not recognised"):
        check_take(model, say(ALICE, "good morning"))


def test_an_unreadable_voice_file_is_left_out_not_fatal(tmp_path: Path) -> None:
    model = load_model("hey_jarvis")
    takes = [say(ALICE, WAKE, t, s) for t, s in TAKES]
    enroll("alice", takes, model).save(voices_dir(tmp_path))
    (voices_dir(tmp_path) / "broken.npz").write_bytes(b"not numpy")
    det = build_detector(WakewordConfig(), tmp_path)
    assert [v.name for v in det.trigger.voices] == ["alice"]


def test_a_voice_enrolled_before_voiceprints_still_wakes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A voice file of format 1 (templates, no prints) is read; enrolled-only mode says that it
    cannot tell other voices from it until it is enrolled again."""
    state = tmp_path / "state"  # as _config() sets it
    model = load_model("hey_jarvis")
    voice = enroll("alice", [say(ALICE, WAKE, t, s) for t, s in TAKES], model)
    assert voice.prints is not None and voice.prints.shape == (len(voice.templates), 64)
    old = VoiceVerifier("alice", voice.templates)
    old.save(voices_dir(state))
    with np.load(voices_dir(state) / "alice.npz") as z:
        assert int(z["format"]) == 1 and "prints" not in z.files
    listed = livespeaker(_config(tmp_path), "list").stdout
    assert "alice" in listed and "no voiceprints: enroll again" in listed
    cfg = WakewordConfig(who_can_wake=WakeAudience.ENROLLED)
    det = build_detector(cfg, state)
    assert [v.prints for v in det.trigger.voices] == [None]
    assert "enrolled before voiceprints" in caplog.text and "alice" in caplog.text
    bob = np.concatenate(
        [np.zeros(MIC_RATE, np.int16), say(BOB, WAKE), np.zeros(MIC_RATE, np.int16)]
    )
    hits = [
        h
        for i in range(0, len(bob) - 320, 320)
        for h in det.process(AudioBlock(bob[i : i + 320].tobytes(), i))
    ]
    assert [h.voice for h in hits] == ["alice"]  # as before prints: the templates alone decide
    voice.save(voices_dir(state))  # enrolled again: format 2, and Bob is told apart
    det = build_detector(cfg, state)
    hits = [
        h
        for i in range(0, len(bob) - 320, 320)
        for h in det.process(AudioBlock(bob[i : i + 320].tobytes(), i))
    ]
    assert hits == []


def test_the_evaluation_decides_exactly_as_the_detector(tmp_path: Path) -> None:
    """evaluate.daemon (cached features) and Detector.process (audio in 20 ms blocks) agree:
    with an enrolled voice in babble, and with microWakeWord's model catching what openWakeWord
    misses in white noise."""
    model = load_model("hey_jarvis")
    voice = enroll("alice", [say(ALICE, WAKE, t, s) for t, s in TAKES], model)
    base = corpus.positives([ALICE, BOB], per_voice=3)
    stream = corpus.apply(base, "babble 10 dB", corpus.HELD_OUT_VOICES, seed=9)
    for who in WakeAudience:
        cfg = WakewordConfig(who_can_wake=who)
        offline = evaluate.daemon(stream, evaluate.analyse(stream), cfg, [voice])
        verifier = VoiceVerifier(voice.name, voice.templates, voice.prints)
        online, _ = evaluate.online(stream, Detector(cfg, voices=[verifier]), block=320)
        assert online.hits == offline.hits, who
        assert online.voices == offline.voices, who
        assert online.end_errors_ms == offline.end_errors_ms, who
        assert sum(online.hits) > 0
        if who is WakeAudience.ENROLLED:
            assert {v for v in online.voices if v} == {"alice"}
    voices = corpus.HELD_OUT_VOICES
    stream = corpus.apply(corpus.positives(voices, 3), "white 10 dB", voices, seed=7)
    offline = evaluate.daemon(stream, evaluate.analyse(stream))
    online, hits = evaluate.online(stream, Detector(WakewordConfig()), block=320)
    assert online.hits == offline.hits
    assert online.end_errors_ms == offline.end_errors_ms
    assert any(h.micro for h in hits)  # the comparison covers microWakeWord's detections


def test_guided_enrollment_on_the_microphone(tmp_path: Path, sound_card: VirtualSoundCard) -> None:
    """No files: the command prompts with a tone, records takes from the microphone, asks again
    for a bad one (here: silence), and saves the voice."""
    cfg = _config(tmp_path)
    env = sound_card.env
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "device",
            "--config",
            str(cfg),
            "wakeword",
            "enroll",
            "--name",
            "carol",
            "--takes",
            "4",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    players: list[subprocess.Popen[bytes]] = []
    takes = iter([None, *TAKES, *TAKES])  # the first prompt gets silence: a bad take
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("take "):
                nxt = next(takes)
                if nxt is not None:
                    pad = np.zeros(MIC_RATE // 2, np.int16)
                    audio = np.concatenate([pad, say(ALICE, WAKE, *nxt), pad])
                    players.append(sound_card.feed_mic(audio, MIC_RATE))
        proc.wait(timeout=120)
    finally:
        proc.kill()
        for p in players:
            p.kill()
            p.wait()
        err = proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    out = "".join(lines)
    assert proc.returncode == 0, out + err
    assert "not used: too quiet" in out
    assert out.count("  ok:") == 4
    assert (voices_dir(tmp_path / "state") / "carol.npz").is_file()
