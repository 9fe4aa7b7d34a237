"""Every failure path: close codes, drops, timeouts, bad frames -> typed errors and retry delays."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from device.apikey import ApiKey, find_api_key
from device.config import LiveConfig
from device.events import ErrorKind, OutputTranscribed, TurnCompleted
from device.live import (
    Backoff,
    BadKeyError,
    ConfigurationError,
    LiveClient,
    LiveError,
    NetworkError,
    ProtocolError,
    QuotaError,
    RetryPolicy,
    ServerError,
    classify,
)
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator
from tests.conftest import SIM_API_KEY, sim_config
from tests.live.helpers import KEY, client_for, events_until, text_of


async def _fail_turn(client: LiveClient) -> LiveError:
    """Open a session, ask something, return the LiveError raised from connect or events()."""
    with pytest.raises(LiveError) as info:
        async with client.session() as conv:
            await conv.send_text("Tell me a story")
            await events_until(conv, within_s=30)
    return info.value


@pytest.mark.integration
async def test_bad_key_is_not_retried_fast(simulator: LiveSimulator, tmp_path: Path) -> None:
    client = LiveClient(sim_config(simulator, tmp_path), ApiKey("wrong", "test"))
    err = await _fail_turn(client)
    assert isinstance(err, BadKeyError) and err.kind is ErrorKind.BAD_KEY
    assert err.retry_after is None and not err.transient
    assert "API key not valid" in str(err)
    assert simulator.connections[0].close_code == 1007


@pytest.mark.integration
async def test_unknown_model_is_a_config_error_naming_the_key(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    err = await _fail_turn(client_for(simulator, tmp_path, model="gemini-2.0-flash-live-001"))
    assert isinstance(err, ConfigurationError) and err.kind is ErrorKind.CONFIG
    assert "live.model = 'gemini-2.0-flash-live-001'" in str(err)
    assert "is not found for API version v1beta" in str(err)
    assert err.retry_after is None


@pytest.mark.integration
@pytest.mark.parametrize("when", [When.SETUP, When.MID_REPLY])
async def test_quota_gets_the_long_backoff(
    simulator: LiveSimulator, tmp_path: Path, when: When
) -> None:
    simulator.inject(Fault(FaultAction.CLOSE_QUOTA, when, after_chunks=2))
    err = await _fail_turn(client_for(simulator, tmp_path, quota_backoff_s=321))
    assert isinstance(err, QuotaError) and err.code == 1011
    assert err.retry_after == 321


@pytest.mark.integration
@pytest.mark.parametrize(
    ("action", "kind", "cls"),
    [
        (FaultAction.CLOSE_INTERNAL, ErrorKind.SERVER, ServerError),
        (FaultAction.CLOSE_UNAVAILABLE, ErrorKind.SERVER, ServerError),
        (FaultAction.DROP, ErrorKind.NO_NETWORK, NetworkError),
    ],
)
async def test_transient_failures_back_off_exponentially(
    simulator: LiveSimulator, tmp_path: Path, action: FaultAction, kind: ErrorKind, cls: type
) -> None:
    client = client_for(simulator, tmp_path, retry_initial_s=1.0, retry_max_s=60)
    client.policy.backoff.jitter = 0.0
    delays = []
    for _ in range(3):
        simulator.inject(Fault(action, When.SETUP))
        err = await _fail_turn(client)
        assert isinstance(err, cls) and err.kind is kind and err.transient
        delays.append(err.retry_after)
    assert delays == [1.0, 2.0, 4.0]
    # Mid-reply too; and a working connection resets the backoff.
    simulator.inject(Fault(action, When.MID_REPLY, after_chunks=2))
    async with client.session() as conv:
        await conv.send_text("Tell me a story")
        with pytest.raises(cls) as info:
            await events_until(conv)
    assert info.value.retry_after == 1.0


@pytest.mark.integration
async def test_connect_timeout_is_a_network_error(tmp_path: Path, simulator: LiveSimulator) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accepts TCP, never answers the TLS handshake

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = sim_config(simulator, tmp_path, connect_timeout_s=0.5)
        cfg = cfg.model_copy(
            update={"live": cfg.live.model_copy(update={"base_url": f"https://127.0.0.1:{port}"})}
        )
        err = await _fail_turn(LiveClient(cfg, KEY))
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()
    assert isinstance(err, NetworkError) and "timed out" in str(err) and err.transient


@pytest.mark.integration
async def test_refused_connection_is_a_network_error(
    tmp_path: Path, simulator: LiveSimulator
) -> None:
    await simulator.stop()
    err = await _fail_turn(client_for(simulator, tmp_path))
    assert isinstance(err, NetworkError) and err.retry_after is not None


@pytest.mark.integration
@pytest.mark.parametrize("action", [FaultAction.MALFORMED, FaultAction.UNKNOWN])
async def test_malformed_frames_are_reported_and_skipped(
    simulator: LiveSimulator, tmp_path: Path, action: FaultAction, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.inject(Fault(action, When.MID_REPLY, after_chunks=2))
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("What is the capital of France?")
        events = await events_until(conv)
        assert conv.stats.malformed_frames == 1
    assert isinstance(events[-1], TurnCompleted)
    assert "Paris" in text_of(events, OutputTranscribed)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(getattr(r, "LIVE_ERROR", "") == "malformed_frame" for r in warned)


@pytest.mark.integration
async def test_oversized_frame_is_a_protocol_error(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    simulator.inject(Fault(FaultAction.OVERSIZED, When.MID_REPLY, after_chunks=1))
    async with client_for(simulator, tmp_path).session() as conv:
        await conv.send_text("What is the capital of France?")
        with pytest.raises(ProtocolError) as info:
            await events_until(conv)
    assert info.value.code == 1009 and info.value.transient


# --- unit: classifier and backoff ----------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (1007, "API key not valid. Please pass a valid API key.", ErrorKind.BAD_KEY),
        (1007, "Request contains an invalid argument.", ErrorKind.CONFIG),
        (
            1008,
            "models/x is not found for API version v1beta, or is not supported",
            ErrorKind.CONFIG,
        ),
        (1008, "Deadline expired before operation could complete.", ErrorKind.SERVER),
        (1011, "You exceeded your current quota, please check your plan", ErrorKind.QUOTA),
        (1011, "Resource has been exhausted (e.g. check quota).", ErrorKind.QUOTA),
        (1011, "Internal error occurred.", ErrorKind.SERVER),
        (1011, "The service is currently unavailable.", ErrorKind.SERVER),
        (1006, "Abnormal closure.", ErrorKind.NO_NETWORK),
        # websockets' own verdict when no pong came (the SDK reports it as 1011): a dead link.
        (1011, "keepalive ping timeout", ErrorKind.NO_NETWORK),
        (1000, "", ErrorKind.SERVER),
    ],
)
def test_classify_sdk_close_errors(code: int, reason: str, kind: ErrorKind) -> None:
    from google.genai import errors

    assert classify(errors.APIError(code, reason), LiveConfig()).kind is kind


@pytest.mark.unit
def test_classify_os_and_timeouts() -> None:
    live = LiveConfig()
    assert classify(ConnectionRefusedError(111, "refused"), live).kind is ErrorKind.NO_NETWORK
    assert classify(TimeoutError(), live).kind is ErrorKind.NO_NETWORK
    assert isinstance(classify(ValueError("Failed to parse response"), live), ProtocolError)


@pytest.mark.unit
def test_backoff_doubles_with_bounded_jitter_and_resets() -> None:
    b = Backoff(1.0, 10.0, jitter=0.2, rng=random.Random(7))
    delays = [b.next() for _ in range(7)]
    for d, base in zip(delays, [1, 2, 4, 8, 10, 10, 10], strict=True):
        assert min(10.0, base * 0.8) <= d <= min(10.0, base * 1.2)
    assert len(set(delays)) > 3  # jittered, not constant
    b.reset()
    assert 0.8 <= b.next() <= 1.2


@pytest.mark.unit
def test_retry_policy_by_kind() -> None:
    policy = RetryPolicy(LiveConfig(quota_backoff_s=300, retry_initial_s=2), random.Random(1))
    assert policy.apply(BadKeyError("x")).retry_after is None
    assert policy.apply(ConfigurationError("x")).retry_after is None
    assert policy.apply(QuotaError("x")).retry_after == 300
    first = policy.apply(NetworkError("x")).retry_after
    assert first is not None and 1.6 <= first <= 2.4


@pytest.mark.integration
async def test_one_failure_counts_once_while_the_mic_keeps_sending(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    client = client_for(simulator, tmp_path)
    simulator.inject(Fault(FaultAction.DROP, When.AUDIO_IN, after_chunks=20))
    async with client.session() as conv:
        with pytest.raises(NetworkError) as info:
            async with asyncio.timeout(30):
                while True:  # a microphone that does not stop: sends fail once the link is gone
                    await conv.send_audio(bytes(640))
                    await asyncio.sleep(0.005)
        with pytest.raises(NetworkError) as from_events:
            await events_until(conv, lambda e: False)
    assert from_events.value is info.value
    assert client.policy.backoff.failures == 1


@pytest.mark.integration
async def test_a_corrected_key_file_is_used_at_the_next_session(
    simulator: LiveSimulator, tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("wrong\n")
    cfg = sim_config(simulator, tmp_path, api_key_file=str(key_file))
    client = LiveClient(
        cfg, find_api_key(cfg.live, {}), key_source=lambda: find_api_key(cfg.live, {})
    )
    err = await _fail_turn(client)
    assert isinstance(err, BadKeyError)
    key_file.write_text(SIM_API_KEY + "\n")  # the user fixes the file; no restart, no reload
    async with client.session() as conv:
        await conv.send_text("Hello?")
        events = await events_until(conv)
    assert any(isinstance(e, TurnCompleted) for e in events)
    assert len(simulator.connections) == 2
