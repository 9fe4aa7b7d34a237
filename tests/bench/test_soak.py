"""A short soak (the bench command runs 200): spoken conversations in a row against the real daemon
process leave no failures and no leaked file descriptors, and the chart draws from the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.simhw.pulse import VirtualSoundCard
from tests.bench.bench_soak import soak_process
from tests.bench.chart import draw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def test_short_soak_has_no_failures_or_leaks(sound_card: VirtualSoundCard, tmp_path: Path) -> None:
    result = soak_process(sound_card, tmp_path, 3)
    assert result["conversations"] == 3
    assert result["failed"] == 0, result["failures"]
    assert result["exit_status"] == 0
    assert result["end"]["open_fds"] <= result["start"]["open_fds"] + 2
    # Read from the daemon's own summary when it stopped (gaps inside a reply; the bar
    # is none over 200 conversations under load).
    assert result["speaker_summary_logged"]
    assert result["speaker_underruns"] == 0
    png = tmp_path / "bench.png"
    draw({"daemon": {"soak": result}, "when": "test", "machine": "rig"}, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
