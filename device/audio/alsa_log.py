"""alsa-lib's own error lines, counted instead of printed.

    alsa_log.install()          # before PortAudio starts (device.audio.devices does it)
    with alsa_log.listing():    # PortAudio lists the devices: not counted
        sd._initialize()
    alsa_log.summary()          # "snd_pcm_recover (pcm.c:8570) 212" (what was left out)

alsa-lib writes a line to stderr for every underrun it recovers from ("ALSA lib pcm.c:8570:
(snd_pcm_recover) underrun occurred") and for every PCM it cannot open while PortAudio lists the
devices at start ("ALSA lib pcm_dmix.c:...(snd_pcm_dmix_open) unable to open slave" on a Pi). On a
loaded machine that is hundreds of lines a second: journald then rate-limits the service and drops
the daemon's own messages with them, and the tail a failed start shows is all ALSA. The daemon
has its own counts (the speaker's underflows, the microphone's overflows); these lines add
little but their number and where they came from, which the speaker's summary logs. The handler
runs on whatever thread alsa-lib reports from (PortAudio's audio thread for an underrun): it only
counts, by where the message came from (the message's own arguments are not read).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

_Handler = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)
"""snd_lib_error_handler_t: (file, line, function, err, fmt, ...); the variadic arguments are
not read (on x86-64 and AArch64 Linux a callee may ignore them)."""

counts: collections.Counter[tuple[bytes, bytes, int, int]] = collections.Counter()
"""alsa-lib messages left out so far, by (function, file, line, errno)."""

_installed: list[object] = []
"""The installed handler (kept alive for as long as alsa-lib may call it: the process)."""
_listing = [False]
"""PortAudio is listing the devices (no stream open): what alsa-lib says then is not counted."""


def _count(
    file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None
) -> None:
    if not _listing[0]:
        counts[(function or b"?", file or b"?", line, err)] += 1


def install() -> bool:
    """Route alsa-lib's messages to the counter (once per process). False where there is no
    alsa-lib (a PortAudio without ALSA: nothing to quiet)."""
    if _installed:
        return True
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    try:
        lib = ctypes.CDLL(name)
        setter = lib.snd_lib_error_set_handler
    except (OSError, AttributeError):
        return False
    handler = _Handler(_count)
    setter.argtypes = [_Handler]
    setter.restype = ctypes.c_int
    if setter(handler) != 0:
        return False
    _installed.append(handler)
    return True


@contextlib.contextmanager
def listing() -> Iterator[None]:
    """PortAudio starts or lists the devices meanwhile: it tries every PCM alsa-lib's
    configuration names, and the ones a machine lacks are no news (sounddevice hid those lines
    from stderr already)."""
    _listing[0] = True
    try:
        yield
    finally:
        _listing[0] = False


def summary() -> str:
    """What alsa-lib reported and was left out, most frequent first, e.g. "snd_pcm_recover
    (pcm.c:8570) 212, snd_pcm_prepare (pcm.c:1228) 3" ("" if nothing)."""
    seen = dict(counts)  # one copy: the audio thread may add a key meanwhile
    parts = []
    for (function, file, line, err), n in sorted(seen.items(), key=lambda kv: -kv[1]):
        where = f"{file.decode(errors='replace')}:{line}"
        if err:
            where += f": {os.strerror(abs(err))}"
        parts.append(f"{function.decode(errors='replace')} ({where}) {n}")
    return ", ".join(parts)
