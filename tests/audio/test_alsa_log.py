"""alsa-lib's own error lines are counted, not printed (device/audio/alsa_log.py): the real
alsa-lib, its "null" PCM, and the call PortAudio makes after an underrun (no sound card)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import ctypes, sys
if sys.argv[1] == "counted":
    from device.audio import alsa_log
    assert alsa_log.install() and alsa_log.install()  # once per process
lib = ctypes.CDLL("libasound.so.2")
pcm = ctypes.c_void_p()
assert lib.snd_pcm_open(ctypes.byref(pcm), b"null", 0, 0) == 0  # SND_PCM_STREAM_PLAYBACK
for _ in range(3):
    lib.snd_pcm_recover(pcm, -32, 0)  # -EPIPE: what PortAudio passes after an underrun
if sys.argv[1] == "counted":
    with alsa_log.listing():  # as while PortAudio lists the devices: not counted
        lib.snd_pcm_recover(pcm, -32, 0)
lib.snd_pcm_close(pcm)
if sys.argv[1] == "counted":
    print(alsa_log.summary())
"""


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True
    )


def test_underrun_lines_are_counted_instead_of_printed() -> None:
    printed = run("printed")  # alsa-lib as it is: a line on stderr per message
    assert printed.stderr.count("(snd_pcm_recover) underrun occurred") == 3
    counted = run("counted")
    assert "ALSA lib" not in counted.stderr
    # where each message came from, counted per call (the "null" PCM also fails the prepare
    # that follows: a second message from snd_pcm_recover and one from snd_pcm_prepare)
    assert re.fullmatch(
        r"snd_\w+ \(pcm\.c:\d+\) 3(, snd_\w+ \(pcm\.c:\d+\) 3)*", counted.stdout.strip()
    )
    assert "snd_pcm_recover (pcm.c:" in counted.stdout
