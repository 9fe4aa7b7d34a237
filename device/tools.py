"""Local tools the model can call: volume, end the conversation, mute, timers and alarms.

Declared to the session as `ToolSpec`s (`local_tools()`), executed here by `ToolExecutor`, answered
with a result dict. Google Search grounding is not a local tool: it is [live] google_search.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

from device.events import ToolSpec
from device.timers.tools import TIMER_TOOL_NAMES, TIMER_TOOLS, TimerTools

log = logging.getLogger(__name__)

VOLUME_STEP = 10

SET_VOLUME = ToolSpec(
    name="set_volume",
    description=(
        "Change the speaker volume. Give either an absolute level from 0 to 100, or a direction "
        "'up' or 'down' (e.g. 'turn it down') with an optional step in percent (default 10)."
    ),
    parameters={
        "type": "object",
        "properties": {
            "level": {"type": "integer", "minimum": 0, "maximum": 100},
            "direction": {"type": "string", "enum": ["up", "down"]},
            "step": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    },
)
GET_VOLUME = ToolSpec(
    name="get_volume",
    description="Read the current speaker volume (0 to 100).",
    parameters={"type": "object", "properties": {}},
)
END_CONVERSATION = ToolSpec(
    name="end_conversation",
    description=(
        "End the conversation after your current reply, when the user says goodbye, thanks you "
        "and is done, or asks you to stop listening."
    ),
    parameters={"type": "object", "properties": {}},
)
MUTE = ToolSpec(
    name="mute",
    description=(
        "Turn the microphone off (privacy mode) after your reply. The user must press and hold "
        "the button to turn it back on."
    ),
    parameters={"type": "object", "properties": {}},
)


def local_tools() -> list[ToolSpec]:
    """Every tool this device offers the model."""
    return [SET_VOLUME, GET_VOLUME, END_CONVERSATION, MUTE, *TIMER_TOOLS]


class ToolHost(Protocol):
    """What the tools act on (the appliance implements it)."""

    def get_volume(self) -> int:
        """Current volume, 0..100."""
        ...

    def set_volume(self, level: int) -> None:
        """Set the volume, 0..100 (persisted)."""
        ...

    def request_end(self) -> None:
        """End the conversation once the current answer has played."""
        ...

    def request_mute(self) -> None:
        """Mute once the current answer has played."""
        ...


class ToolExecutor:
    """Runs a tool call by name; never raises for bad input, answers with {"error": ...}."""

    def __init__(self, host: ToolHost, timers: TimerTools | None = None) -> None:
        self._host = host
        self._timers = timers

    def news(self) -> tuple[str, set[tuple[str, float]]]:
        """What the next conversation should be told (timers that rang or were missed meanwhile:
        TimerTools.news), and the keys for told()."""
        return self._timers.news() if self._timers is not None else ("", set())

    def told(self, keys: set[tuple[str, float]]) -> None:
        """The news went out with a session that opened."""
        if self._timers is not None:
            self._timers.told(keys)

    def run(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Execute one call and return the result sent back to the model."""
        try:
            result = self._dispatch(name, args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            result = {"error": f"bad arguments for {name}: {exc}"}
        # The result, but not an error's text: it quotes the model's arguments (words, maybe).
        log.info(
            "tool %s -> %s",
            name,
            "bad arguments" if "error" in result else result,
            extra={"TOOL": name},
        )
        return result

    def _dispatch(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        host = self._host
        if name in TIMER_TOOL_NAMES:
            if self._timers is None:
                return {"error": "timers are not available on this device"}
            return self._timers.run(name, args)
        if name == "get_volume":
            return {"volume": host.get_volume()}
        if name == "set_volume":
            return self._set_volume(args)
        if name == "end_conversation":
            host.request_end()
            return {"result": "the conversation ends after this reply"}
        if name == "mute":
            host.request_mute()
            return {"result": "the microphone turns off after this reply"}
        return {"error": f"unknown tool {name!r}"}

    def _set_volume(self, args: dict[str, Any]) -> dict[str, Any]:
        before = self._host.get_volume()
        if args.get("level") is not None:
            level = _whole(args, "level")
        elif args.get("direction") in ("up", "down"):
            step = _whole(args, "step") if args.get("step") else VOLUME_STEP
            level = before + step if args["direction"] == "up" else before - step
        else:
            raise ValueError("give 'level' (0-100) or 'direction' ('up' or 'down')")
        level = max(0, min(100, level))
        self._host.set_volume(level)
        return {"volume": level, "previous": before}


def _whole(args: dict[str, Any], name: str) -> int:
    """args[name] as an int. JSON numbers arrive as float when they have an exponent or a fraction:
    1e400 is float('inf') and NaN is nan, which int() cannot take (OverflowError / ValueError)."""
    value = args[name]
    if isinstance(value, bool):
        raise ValueError(f"'{name}' must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"'{name}' must be a finite number from 0 to 100, not {value!r}")
    return int(number)
