"""`livespeaker ask` and `livespeaker simulator` as real processes, over TLS on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard, read_wav
from device.simhw.speech import synthesize
from device.simulator.certs import CertFiles
from device.simulator.server import LiveSimulator
from tests.conftest import SIM_API_KEY, running_simulator
from tests.live.helpers import KEY
from tests.simhw.test_rig import best_correlation

pytestmark = pytest.mark.integration


def _write_config(sim_url: str, ca: Path, tmp: Path) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        f'state_dir = "{tmp / "state"}"\n[live]\nbase_url = "{sim_url}"\nca_file = "{ca}"\n'
    )
    return cfg


async def _livespeaker(
    *args: str, stdin: bytes = b"", key: str = SIM_API_KEY, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    env = {**(env or os.environ), "GEMINI_API_KEY": key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "device", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_second_ask_process_resumes_and_remembers(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    cfg = _write_config(simulator.base_url, simulator.certs.ca, tmp_path)
    wav = tmp_path / "reply.wav"
    rc, out, err = await _livespeaker(
        "--config", str(cfg), "ask", "What is the capital of Brazil?", "--wav", str(wav)
    )
    assert rc == 0, err
    assert out.strip() == "The capital of Brazil is Brasilia."
    samples, rate = read_wav(wav)
    assert rate == 24000
    assert best_correlation(synthesize(out.strip(), 24000), samples) > 0.95
    first_handle = simulator.connections[0].handles[-1]

    rc, out, err = await _livespeaker("--config", str(cfg), "ask", "What did I ask before?")
    assert rc == 0, err
    assert out.strip() == 'Before this you asked: "What is the capital of Brazil?".'
    assert simulator.connections[1].resumed_from == first_handle

    rc, out, err = await _livespeaker(
        "--config", str(cfg), "ask", "--new", "What did I ask before?"
    )
    assert rc == 0, err
    assert out.strip() == "You have not asked me anything before."
    assert simulator.connections[2].resumed_from is None


async def test_a_reply_sent_at_16_khz_is_played_at_its_own_speed(
    tls_certs: CertFiles, tmp_path: Path
) -> None:
    """The server labels its audio `audio/pcm;rate=16000` instead of 24000: the reply is
    resampled, not played 1.5x fast (device/live/model_audio.py)."""
    async with running_simulator(
        tls_certs, realtime_factor=20.0, hold_turn_complete=False, answer_rate=16000
    ) as sim:
        cfg = _write_config(sim.base_url, sim.certs.ca, tmp_path)
        wav = tmp_path / "reply.wav"
        rc, out, err = await _livespeaker(
            "--config", str(cfg), "ask", "What is the capital of Brazil?", "--wav", str(wav)
        )
    assert rc == 0, err
    samples, rate = read_wav(wav)
    expected = synthesize(out.strip(), 24000)
    assert rate == 24000 and abs(len(samples) - len(expected)) < 24000 * 0.02
    assert best_correlation(expected, samples) > 0.9


async def test_ask_turn_loop_reads_stdin_until_q(simulator: LiveSimulator, tmp_path: Path) -> None:
    cfg = _write_config(simulator.base_url, simulator.certs.ca, tmp_path)
    rc, out, err = await _livespeaker(
        "--config", str(cfg), "ask", "--new",
        stdin=b"Hello? Gemini are you there?\nWhat did I ask before?\nq\nnot sent\n",
    )  # fmt: skip
    assert rc == 0, err
    assert out.splitlines() == [
        "Hello there! I am here. How can I help you today?",
        'Before this you asked: "Hello? Gemini are you there?".',
    ]
    assert "message > " in err
    assert len(simulator.connections) == 1
    texts = [f for f in simulator.connections[0].frames if "client_content" in f]
    assert len(texts) == 2


async def test_ask_exit_codes(simulator: LiveSimulator, tmp_path: Path) -> None:
    cfg = _write_config(simulator.base_url, simulator.certs.ca, tmp_path)
    rc, _, err = await _livespeaker("--config", str(cfg), "ask", "hi", key="wrong-key")
    assert rc == 77 and "API key was rejected" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text() + 'model = "gemini-live-2.5-flash-preview"\n')
    rc, _, err = await _livespeaker("--config", str(bad), "ask", "hi")
    assert rc == 78 and "live.model = 'gemini-live-2.5-flash-preview'" in err


async def test_simulator_command_serves_the_sdk(tmp_path: Path) -> None:
    from device.config import Config
    from device.events import ModelAudio, OutputTranscribed
    from device.live import LiveClient
    from tests.live.helpers import events_until, text_of

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "device", "simulator", "--port", "0",
        "--cert-dir", str(tmp_path / "tls"), "--api-key", SIM_API_KEY,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split(" = ")[1].strip()
        ca = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split(" = ")[1].strip()
        assert Path(ca) == tmp_path / "tls" / "ca.pem"
        cfg = Config.model_validate(
            {"state_dir": str(tmp_path / "st"), "live": {"base_url": url, "ca_file": ca}}
        )
        async with LiveClient(cfg, KEY).session() as conv:
            await conv.send_text("What is the capital of France?")
            events = await events_until(conv)
        assert "Paris" in text_of(events, OutputTranscribed)
        assert sum(len(e.pcm) for e in events if isinstance(e, ModelAudio)) > 24000
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_ask_play_sounds_on_the_speaker(
    simulator: LiveSimulator, tmp_path: Path, sound_card: VirtualSoundCard
) -> None:
    cfg = _write_config(simulator.base_url, simulator.certs.ca, tmp_path)
    rate = 48000
    with sound_card.record_speaker(rate) as rec:
        await asyncio.to_thread(rec.wait_until_flowing, 10.0)
        rc, out, err = await _livespeaker(
            "--config", str(cfg), "ask", "--play", "Hello? Gemini are you there?",
            env=sound_card.env,
        )  # fmt: skip
        await asyncio.sleep(0.5)
    assert rc == 0, err
    reply = synthesize(out.strip(), rate)
    # An idle null sink can lose the start, the ALSA plugin may swallow the very end on exit:
    # compare the middle of the reply.
    middle = reply[rate * 4 // 5 : rate * 2]
    corr = best_correlation(middle, rec.samples)
    assert corr > 0.8, (corr, len(reply) / rate, len(rec.samples) / rate, err[-2000:])
