"""The newest resumption handle, persisted in state_dir so a conversation outlives the process.

Written atomically (temp file + rename) with mode 0600, with the time it was issued and the model
it belongs to. A handle is only used for the same model and while younger than live.resume_window_s.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from device.statefile import write_atomic

log = logging.getLogger(__name__)

FILENAME = "live-resumption.json"


@dataclass(frozen=True)
class SavedHandle:
    """A resumption handle with its issue time (unix seconds) and model."""

    handle: str
    model: str
    saved_at: float

    @property
    def age_s(self) -> float:
        """Seconds since the handle was issued."""
        return max(0.0, time.time() - self.saved_at)


class HandleStore:
    """Load/save/clear the handle file in a state directory."""

    def __init__(self, state_dir: str | os.PathLike[str], filename: str = FILENAME) -> None:
        self.path = Path(state_dir) / filename

    def load(self) -> SavedHandle | None:
        """The saved handle (whatever its age), or None when there is none or it is unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return SavedHandle(str(data["handle"]), str(data["model"]), float(data["saved_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable resumption handle file %s: %s", self.path, exc)
            return None

    def usable(self, model: str, window_s: float) -> SavedHandle | None:
        """The saved handle if it is for `model` and younger than window_s, else None."""
        saved = self.load()
        if saved is None or window_s <= 0:
            return None
        if saved.model != model:
            log.info(
                "saved conversation is for model %s, not %s: starting fresh", saved.model, model
            )
            return None
        if saved.age_s > window_s:
            log.info(
                "saved conversation is %.0f s old (window %.0f s): starting fresh",
                saved.age_s,
                window_s,
            )
            return None
        return saved

    def save(self, handle: str, model: str, saved_at: float | None = None) -> SavedHandle:
        """Atomically replace the saved handle (mode 0600)."""
        saved = SavedHandle(handle, model, time.time() if saved_at is None else saved_at)
        write_atomic(
            self.path,
            json.dumps({"handle": saved.handle, "model": saved.model, "saved_at": saved.saved_at}),
        )
        return saved

    def clear(self) -> None:
        """Forget the saved handle."""
        self.path.unlink(missing_ok=True)
