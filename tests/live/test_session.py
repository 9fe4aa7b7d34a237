"""The session engine with the real google-genai SDK against the simulator over TLS on loopback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from device.config import PrivacyConfig
from device.events import (
    GenerationCompleted,
    InputTranscribed,
    ModelAudio,
    OutputTranscribed,
    ServerInterrupted,
    SessionResumed,
    ToolCalled,
    ToolCallsCancelled,
    ToolSpec,
    TurnCompleted,
)
from device.live import LiveClient
from device.simhw.speech import synthesize
from device.simulator import protocol as p
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.conftest import SpeechFactory, sim_config
from tests.live.helpers import KEY, client_for, events_until, text_of
from tests.simhw.test_rig import best_correlation

pytestmark = pytest.mark.integration


def _ours(record: logging.LogRecord) -> bool:
    """A record of the device's own code (not the simulator standing in for the service)."""
    return record.name.startswith("device.") and not record.name.startswith("device.simulator")


SET_VOLUME = ToolSpec(
    "set_volume",
    "Set the speaker volume in percent.",
    {"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]},
)


async def test_text_turn(
    simulator: LiveSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.live")
    client = client_for(simulator, tmp_path)
    async with client.session() as conv:
        await conv.send_text("Hello? Gemini are you there?")
        events = await events_until(conv)
    assert events[0] == SessionResumed(False, None)
    assert "I am here" in text_of(events, OutputTranscribed)
    audio = b"".join(e.pcm for e in events if isinstance(e, ModelAudio))
    assert len(audio) > 24000  # > 0.5 s of 24 kHz speech
    assert any(isinstance(e, GenerationCompleted) for e in events)
    done = events[-1]
    assert isinstance(done, TurnCompleted) and done.usage and done.usage.total_tokens > 0
    frames = simulator.connections[0].frames
    setup = frames[0]["setup"]
    assert setup["model"] == "models/gemini-3.8-live"
    assert p.silence_ms(setup) == client.live.vad_silence_ms
    speech_cfg = setup["generationConfig"]["speechConfig"]
    assert p.pick(p.pick(speech_cfg, "voice_config"), "prebuilt_voice_config") == {
        "voice_name": "Kore"
    }
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["systemInstruction"]["parts"][0]["text"] == client.live.system_instruction
    assert "inputAudioTranscription" in setup and "outputAudioTranscription" in setup
    assert p.pick(setup, "session_resumption") == {}
    assert p.pick(setup, "context_window_compression")["sliding_window"]["target_tokens"] == 12800
    assert p.texts_of_turns(frames[1]["client_content"]["turns"]) == "Hello? Gemini are you there?"
    turn_logs = [r for r in caplog.records if getattr(r, "TOTAL_TOKENS", None)]
    assert done.usage.total_tokens == turn_logs[-1].TOTAL_TOKENS  # type: ignore[attr-defined]
    # By default no log carries the words (device.privacy.transcripts).
    assert "Gemini" not in caplog.text and "I am here" not in caplog.text
    assert not [r for r in caplog.records if hasattr(r, "MODEL_TEXT")]


async def test_audio_turn(
    simulator: LiveSimulator,
    tmp_path: Path,
    speech: SpeechFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    question = "what is the capital of France"
    pcm = speech(question)
    simulator.register_utterance(question, pcm)
    silence = np.zeros(16000, np.int16)
    stream = np.concatenate([silence[:4000], pcm, silence]).tobytes()
    async with client_for(simulator, tmp_path).session() as conv:
        for i in range(0, len(stream), 640):  # 20 ms chunks
            await conv.send_audio(stream[i : i + 640])
        events = await events_until(conv)
    assert text_of(events, InputTranscribed) == question
    reply_text = text_of(events, OutputTranscribed).strip()
    assert reply_text == "The capital of France is Paris."
    reply = np.frombuffer(b"".join(e.pcm for e in events if isinstance(e, ModelAudio)), np.int16)
    assert best_correlation(synthesize(reply_text, 24000), reply) > 0.95
    received = b"".join(simulator.connections[0].audio_in())
    assert received == stream
    # Words stay off every log of the device, at any level (the simulator's own logs aside; the
    # daemon keeps third-party loggers such as websockets' frame dumps at warning: logsetup).
    ours = [r for r in caplog.records if _ours(r)]
    assert [r.name for r in ours if r.name == "device.live.session"]  # it did log the turn
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "capital" not in text and "Paris" not in text


async def test_unregistered_audio_is_described_not_invented(
    simulator: LiveSimulator, tmp_path: Path, speech: SpeechFactory
) -> None:
    pcm = np.concatenate([speech("tell me something"), np.zeros(16000, np.int16)]).tobytes()
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_audio(pcm)
        events = await events_until(conv)
    assert text_of(events, InputTranscribed).startswith("[an audio question of ")


async def test_resumes_saved_handle_and_remembers(simulator: LiveSimulator, tmp_path: Path) -> None:
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("What is the capital of Brazil?")
        await events_until(conv)
        assert await conv.wait_for_handle(conv.stats.turns, 10)
    saved = client_for(simulator, tmp_path).store.load()
    assert saved is not None and saved.handle == simulator.connections[0].handles[-1]
    assert saved.model == "gemini-3.8-live"
    assert (
        saved_path := client_for(simulator, tmp_path).store.path
    ).stat().st_mode & 0o777 == 0o600
    assert saved_path.exists()
    async with client_for(simulator, tmp_path).session() as conv:
        events = await events_until(conv, lambda e: isinstance(e, SessionResumed))
        assert events[0].resumed  # type: ignore[union-attr]
        await conv.send_text("What did I ask before?")
        events = await events_until(conv)
    assert "What is the capital of Brazil?" in text_of(events, OutputTranscribed)
    assert simulator.connections[1].resumed_from == saved.handle


async def test_rejected_handle_starts_fresh(
    simulator: LiveSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(simulator, tmp_path)
    client.store.save("h-unknown-to-the-server", "gemini-3.8-live")
    async with client.session() as conv:
        events = await events_until(conv, lambda e: isinstance(e, SessionResumed))
        await conv.send_text("What did I ask before?")
        events += await events_until(conv)
    assert events[0] == SessionResumed(False, None)
    assert "not asked me anything" in text_of(events, OutputTranscribed)
    assert any("rejected the saved resumption handle" in r.getMessage() for r in caplog.records)
    assert simulator.connections[0].close_code == 1007
    assert simulator.connections[1].resumed_from is None


async def test_expired_or_other_model_handle_is_not_used(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    client = client_for(simulator, tmp_path, resume_window_s=60)
    handle = simulator.new_handle(("What is the capital of Brazil?",))
    client.store.save(handle, "gemini-3.8-live", saved_at=0.0)  # 1970: expired
    async with client.session() as conv:
        assert (await events_until(conv, lambda e: True))[0] == SessionResumed(False, None)
    client.store.save(handle, "gemini-3.1-flash-live-preview")
    async with client.session() as conv:
        assert (await events_until(conv, lambda e: True))[0] == SessionResumed(False, None)
    client.store.save(handle, "gemini-3.8-live")
    async with client.session() as conv:
        assert (await events_until(conv, lambda e: True))[0].resumed  # type: ignore[union-attr]
    assert [c.resumed_from for c in simulator.connections] == [None, None, handle]


async def test_go_away_handover_keeps_every_chunk_once_in_order(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    client = client_for(simulator, tmp_path)
    async with client.session() as conv:
        await conv.send_text("What is the capital of France?")
        await events_until(conv)
        assert await conv.wait_for_handle(conv.stats.turns, 10)
        simulator.inject(Fault(FaultAction.GO_AWAY, When.AUDIO_IN, after_chunks=30))
        # 150 chunks of 20 ms, each tagged with its number (quiet: no VAD turn).
        chunks = [np.full(320, i, np.int16).tobytes() for i in range(150)]
        for chunk in chunks:
            await conv.send_audio(chunk)
            await asyncio.sleep(0.004)
        events = await events_until(conv, lambda e: e == SessionResumed(True, None))
        await conv.send_text("What did I ask before?")
        events += await events_until(conv)
    first, second = simulator.connections
    assert first.audio_in() + second.audio_in() == chunks
    assert len(first.audio_in()) >= 30 and len(second.audio_in()) > 0
    assert second.resumed_from == first.handles[-1]
    assert "What is the capital of France?" in text_of(events, OutputTranscribed)
    assert conv.stats.handovers == 1 and conv.stats.audio_chunks_sent == 150
    assert first.close_code == 1000  # the client closed it after the handover, not the deadline


async def test_go_away_mid_reply_lets_the_reply_finish(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    simulator.realtime_factor = 5.0
    simulator.inject(Fault(FaultAction.GO_AWAY, When.MID_REPLY, after_chunks=3))
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("Tell me a story")
        events = await events_until(conv)
        await conv.send_text("What is the capital of France?")
        events += await events_until(conv)
    assert SessionResumed(True, None) in events
    text = text_of(events, OutputTranscribed)
    assert "everyone in the house was delighted" in text and "Paris" in text
    assert len(simulator.connections) == 2


async def test_tool_call_round_trip(simulator: LiveSimulator, tmp_path: Path) -> None:
    cfg = sim_config(simulator, tmp_path, google_search=True)
    client = LiveClient(cfg, KEY, tools=[SET_VOLUME])
    async with client.session() as conv:
        await conv.send_text("Please turn it down")
        events = await events_until(conv, lambda e: isinstance(e, ToolCalled))
        call = events[-1]
        assert isinstance(call, ToolCalled) and call.name == "set_volume"
        assert call.args == {"level": 30}
        await conv.send_tool_response(call.id, call.name, {"result": "ok"})
        events = await events_until(conv)
    assert "volume down to 30 percent" in text_of(events, OutputTranscribed)
    setup = simulator.connections[0].setup
    assert p.declared_tools(setup) == {"set_volume"}
    assert {"googleSearch": {}} in setup["tools"]


async def test_unknown_tool_call_gets_an_error_response(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("Call the undeclared tool")
        events = await events_until(conv)
    assert not any(isinstance(e, ToolCalled) for e in events)
    assert "unknown tool launch_rocket" in text_of(events, OutputTranscribed)


async def test_speech_during_reply_interrupts(
    simulator: LiveSimulator, tmp_path: Path, speech: SpeechFactory
) -> None:
    simulator.realtime_factor = 1.0
    barge = np.concatenate([speech("stop"), np.zeros(16000, np.int16)]).tobytes()
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("Tell me a story")
        await events_until(conv, lambda e: isinstance(e, ModelAudio))
        await conv.send_audio(barge)
        events = await events_until(conv, lambda e: isinstance(e, ServerInterrupted))
    assert not any(isinstance(e, GenerationCompleted) for e in events)
    assert "serverContent.interrupted" in simulator.connections[0].sent


async def test_barge_in_cancels_a_pending_tool_call(
    simulator: LiveSimulator, tmp_path: Path, speech: SpeechFactory
) -> None:
    client = LiveClient(sim_config(simulator, tmp_path), KEY, tools=[SET_VOLUME])
    barge = np.concatenate([speech("never mind"), np.zeros(16000, np.int16)]).tobytes()
    async with client.session() as conv:
        await conv.send_text("Turn it down")
        call = (await events_until(conv, lambda e: isinstance(e, ToolCalled)))[-1]
        await conv.send_audio(barge)
        events = await events_until(conv, lambda e: isinstance(e, ToolCallsCancelled))
    assert isinstance(call, ToolCalled)
    assert events[-1] == ToolCallsCancelled((call.id,))
    assert ServerInterrupted() in events


@pytest.mark.parametrize("log_transcripts", [False, True])
async def test_transcripts_reach_the_log_only_when_switched_on(
    simulator: LiveSimulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    log_transcripts: bool,
) -> None:
    """privacy.log_transcripts: off, no words at any level; on, each turn's words at debug level,
    whatever the root level (the switch is the config key, not --log-level)."""
    caplog.set_level(logging.INFO)  # the daemon's default level
    caplog.handler.setLevel(logging.DEBUG)
    cfg = sim_config(simulator, tmp_path)
    cfg = cfg.model_copy(update={"privacy": PrivacyConfig(log_transcripts=log_transcripts)})
    async with LiveClient(cfg, KEY).session() as conv:
        await conv.send_text("What is the capital of Brazil?")
        events = await events_until(conv)
    assert text_of(events, OutputTranscribed).strip() == "The capital of Brazil is Brasilia."
    ours = [r for r in caplog.records if _ours(r)]
    words = [r for r in ours if "Brasilia" in f"{r.getMessage()} {r.__dict__}"]
    if log_transcripts:
        assert [(r.name, r.levelno) for r in words] == [("device.transcripts", logging.DEBUG)]
        assert words[0].USER_TEXT == "What is the capital of Brazil?"  # type: ignore[attr-defined]
    else:
        assert words == []
        assert not [r for r in ours if "Brazil" in f"{r.getMessage()} {r.__dict__}"]


@pytest.mark.integration
async def test_a_device_note_follows_the_system_instruction_on_the_wire(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    client = client_for(simulator, tmp_path)
    note = "Device note (not said by the user): the pasta timer went off 2 minutes ago."
    async with client.session(note=note) as conv:
        await conv.send_text("Hello?")
        await events_until(conv)
    async with client.session() as conv:  # the next one goes without it
        await conv.send_text("Hello again?")
        await events_until(conv)
    first, second = (
        p.pick(c.setup, "system_instruction")["parts"][0]["text"] for c in simulator.connections
    )
    assert first == f"{client.live.system_instruction}\n\n{note}"
    assert second == client.live.system_instruction
