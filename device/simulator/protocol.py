"""Wire details of the Live API as the simulator sees them: casing, base64, paths, replies.

Everything here is pure: parsing what clients send and building what the server answers.
Facts come from /work/shared/docs/live-api-protocol.md (what the real SDK sends and accepts).
"""

from __future__ import annotations

import base64
import re
from typing import Any

SERVICE = "GenerativeService.BidiGenerateContent"
_PATH_RE = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\."
    r"GenerativeService\.BidiGenerateContent(Constrained)?$"
)

# Close reasons as the real service words them (<= 123 bytes).
REASON_BAD_KEY = "API key not valid. Please pass a valid API key."
REASON_INVALID = "Request contains an invalid argument."
REASON_QUOTA = "You exceeded your current quota, please check your plan and billing details."
REASON_INTERNAL = "Internal error occurred."
REASON_UNAVAILABLE = "The service is currently unavailable."
REASON_DEADLINE = "Deadline expired before operation could complete."
REASON_HANDLE = "Invalid session resumption handle."


def reason_not_found(model: str, version: str) -> str:
    """The 1008 reason for an unknown model, cut to the 123 bytes a close frame allows."""
    text = (
        f"models/{model} is not found for API version {version}, or is not supported for "
        "bidiGenerateContent. Call ListModels to see the list of available models."
    )
    return text.encode()[:123].decode(errors="ignore")


def parse_path(path: str) -> tuple[str, str | None] | None:
    """(api_version, key from ?key=) for a valid Live API path, else None. Accepts `//ws/...`."""
    route, _, query = path.partition("?")
    m = _PATH_RE.match(route)
    if not m:
        return None
    key = None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "key" and value:
            key = value
    return m.group(1), key


def camel(snake: str) -> str:
    """snake_case -> camelCase."""
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def pick(d: Any, snake: str, default: Any = None) -> Any:
    """d[snake] or d[camelCase]: the SDK mixes both spellings, raw clients use camelCase."""
    if not isinstance(d, dict):
        return default
    if snake in d:
        return d[snake]
    return d.get(camel(snake), default)


def b64decode(s: str) -> bytes:
    """Decode either base64 alphabet, with or without padding."""
    s = s.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64encode(data: bytes) -> str:
    """Standard base64 (what the service sends)."""
    return base64.b64encode(data).decode("ascii")


def strip_model(name: str) -> str:
    """'models/x' -> 'x'."""
    return name.removeprefix("models/")


def texts_of_turns(turns: Any) -> str:
    """The user text in client_content turns (a list of Content, or one Content)."""
    if isinstance(turns, dict):
        turns = [turns]
    out: list[str] = []
    for turn in turns or []:
        for part in pick(turn, "parts", []) or []:
            text = pick(part, "text")
            if isinstance(text, str):
                out.append(text)
    return " ".join(out).strip()


def declared_tools(setup: dict[str, Any]) -> set[str]:
    """Names of the function declarations in the setup."""
    names: set[str] = set()
    for tool in pick(setup, "tools", []) or []:
        for decl in pick(tool, "function_declarations", []) or []:
            if isinstance(name := pick(decl, "name"), str):
                names.add(name)
    return names


def silence_ms(setup: dict[str, Any], default: int = 700) -> int:
    """realtimeInputConfig.automaticActivityDetection.silenceDurationMs, else default."""
    aad = pick(pick(setup, "realtime_input_config", {}), "automatic_activity_detection", {})
    value = pick(aad, "silence_duration_ms")
    return int(value) if isinstance(value, int | float) else default


def auto_vad_disabled(setup: dict[str, Any]) -> bool:
    """True when the client turned the server VAD off (it sends activityStart/End itself)."""
    aad = pick(pick(setup, "realtime_input_config", {}), "automatic_activity_detection", {})
    return bool(pick(aad, "disabled", False))


# --- server messages --------------------------------------------------------------------------


def setup_complete() -> dict[str, Any]:
    """Answer to a valid setup."""
    return {"setupComplete": {}}


def content(**fields: Any) -> dict[str, Any]:
    """A serverContent message."""
    return {"serverContent": fields}


def audio_chunk(pcm: bytes, rate: int = 24000) -> dict[str, Any]:
    """Model speech, 16-bit mono PCM."""
    part = {"inlineData": {"mimeType": f"audio/pcm;rate={rate}", "data": b64encode(pcm)}}
    return content(modelTurn={"role": "model", "parts": [part]})


def turn_complete(prompt_tokens: int, response_tokens: int) -> dict[str, Any]:
    """turnComplete with its usage."""
    return {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "responseTokenCount": response_tokens,
            "totalTokenCount": prompt_tokens + response_tokens,
        },
    }


def resumption_update(handle: str | None) -> dict[str, Any]:
    """A handle (resumable) or, with None, the not-resumable-right-now update."""
    if handle is None:
        return {"sessionResumptionUpdate": {"resumable": False}}
    return {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}
