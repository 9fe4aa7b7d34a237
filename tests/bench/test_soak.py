"""A short soak (the bench command runs 200): spoken conversations in a row leave no failures,
no leaked file descriptors, and the chart draws from the real result."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simulator.server import LiveSimulator
from tests.bench.bench_conversations import SummaryCounter, run_soak, teach
from tests.bench.chart import draw
from tests.conftest import SpeechFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_short_soak_has_no_failures_or_leaks(
    sound_card: VirtualSoundCard, simulator: LiveSimulator, speech: SpeechFactory, tmp_path: Path
) -> None:
    import logging

    question = speech("Hey Jarvis, what is the capital of France?", MIC_RATE)
    teach(simulator, "what is the capital of France", question)
    simulator.api_keys = {"bench-key"}
    counter = SummaryCounter()
    logging.getLogger("device.audio").addHandler(counter)
    try:
        result = await run_soak(sound_card, tmp_path, simulator, question, 4, counter)
    finally:
        logging.getLogger("device.audio").removeHandler(counter)
    assert result["conversations"] == 4
    assert result["failed"] == 0, result["failures"]
    assert result["end"]["open_fds"] <= result["start"]["open_fds"] + 2
    assert result["end"]["rss_mib"] < result["start"]["rss_mib"] + 50
    served = [c for c in simulator.connections if c.audio_in()]
    assert len(served) >= 4  # every conversation reached the server with audio
    png = tmp_path / "bench.png"
    draw({"daemon": {"soak": result}, "when": "test", "machine": "rig"}, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
