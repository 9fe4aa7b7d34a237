"""Software volume level 0-100, persisted under state_dir so it survives restarts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from device.statefile import StateFile

log = logging.getLogger(__name__)

FILENAME = "volume"


class VolumeStore:
    """Reads and atomically writes the volume level file (`<state_dir>/volume`)."""

    def __init__(self, state_dir: str | os.PathLike[str], default: int) -> None:
        self.path = Path(state_dir) / FILENAME
        self._file = StateFile.at(self.path)
        self.default = clamp(default)

    def load(self) -> int:
        """The saved level (one this process could not write yet included), or the default when
        none (or an unreadable one) is saved."""
        try:
            text = self._file.read()
            return self.default if text is None else clamp(int(text.strip()))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable volume file %s: %s", self.path, exc)
            return self.default

    def save(self, level: int) -> None:
        """Write atomically (temp file + rename): a power cut leaves the old or the new level.
        Never raises: on a full or read-only state_dir the level holds in memory (also across a
        reload) and a warning names the directory (device.statefile)."""
        self._file.set(f"{clamp(level)}\n")


def clamp(level: int) -> int:
    """Limit to 0..100."""
    return max(0, min(100, int(level)))


def gain(level: int) -> float:
    """Linear gain for a level: a perceptual (squared) curve, 0 = silent, 100 = unity."""
    return (clamp(level) / 100.0) ** 2
