"""Find the API key without ever putting it in argv, logs or the config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from device.config import LiveConfig


@dataclass(frozen=True)
class ApiKey:
    """A key and where it came from; repr() never shows the key."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r}, value=<redacted>)"

    __str__ = __repr__


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def find_api_key(live: LiveConfig, environ: dict[str, str] | None = None) -> ApiKey | None:
    """Lookup order: systemd credential, live.api_key_file, GEMINI_API_KEY, GOOGLE_API_KEY."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (key := _read(Path(cred_dir) / "api-key")):
        return ApiKey(key, "systemd credential api-key")
    if live.api_key_file and (key := _read(Path(live.api_key_file))):
        return ApiKey(key, f"file {live.api_key_file}")
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        if key := env.get(var, "").strip():
            return ApiKey(key, f"environment {var}")
    return None
