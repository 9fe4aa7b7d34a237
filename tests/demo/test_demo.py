"""`livespeaker demo` as the README runs it: no sound card, no key, no terminal → scripted, exit 0.

The subprocess gets no PulseAudio of the test rig: the demo must bring up its own virtual card.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_demo_runs_its_scripted_conversation_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "XDG_RUNTIME_DIR")}
    proc = subprocess.run(
        [sys.executable, "-m", "device", "demo"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "Live API simulator at https://127.0.0.1:" in out
    states = re.findall(r"\] state (\w+)", out)
    assert states[:6] == ["starting", "idle", "connecting", "listening", "responding", "listening"]
    assert states[6:9] == ["responding", "listening", "idle"]
    # Transcripts of both turns, the follow-up heard without the wake word.
    assert "you said:  'what is the capital of France'" in out
    assert "assistant: 'The capital of France is Paris.'" in out
    assert "you said:  'what is the capital of Brazil'" in out
    assert "assistant: 'The capital of Brazil is Brasilia.'" in out
    # LEDs drawn from the mock pins: blue while listening (default RGB mode), dark when idle.
    assert re.search(r"state listening\s+Listening\s+LED rgb\(0\.00,0\.00,1\.00\)", out)
    assert re.search(r"state idle\s+Listening for 'hey jarvis'\s+LED rgb\(0\.00,0\.00,0\.00\)", out)
    latencies = [float(x) for x in re.findall(r"speech end → answer playing ([\d.]+) s", out)]
    assert len(latencies) == 2 and all(0 < x < 15 for x in latencies)
    assert re.search(r"demo complete: 2 answered turns", out)
