"""What the simulated model says: a few canned answers, memory of the conversation, tool use.

Pure and deterministic, so tests can assert on replies. Memory is the list of earlier user turns
kept per resumption handle by the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LONG_ANSWER = (
    "Once upon a time a small speaker lived on a kitchen shelf. Every morning it listened for "
    "its name, told the weather, and played quiet music while the kettle boiled. One day it "
    "learned to remember what people asked, and everyone in the house was delighted."
)


@dataclass(frozen=True)
class ToolRequest:
    """The model wants the client to run a function before it answers."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A spoken answer, or a tool request (answered after the tool response)."""

    text: str = ""
    tool: ToolRequest | None = None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower())


def answer(user: str, history: tuple[str, ...], tools: set[str]) -> Reply:
    """The reply to `user`, given the earlier user turns and the declared tool names."""
    q = _norm(user)
    if re.search(r"what did i (just )?ask", q) or "what was my question" in q or "remember" in q:
        if not history:
            return Reply("You have not asked me anything before.")
        return Reply(f'Before this you asked: "{history[-1]}".')
    if "capital of france" in q:
        return Reply("The capital of France is Paris.")
    if "capital of brazil" in q:
        return Reply("The capital of Brazil is Brasilia.")
    if "undeclared tool" in q:
        return Reply(tool=ToolRequest("launch_rocket", {"target": "moon"}))
    if "turn it down" in q or "volume" in q or "quieter" in q:
        if "set_volume" in tools:
            return Reply(tool=ToolRequest("set_volume", {"level": 30}))
        return Reply("Sorry, I cannot change the volume on this device.")
    if "alarm" in q and "set_alarm" in tools and (at := re.search(r"(\d{1,2}):(\d{2})", user)):
        return Reply(tool=ToolRequest("set_alarm", {"time": f"{int(at[1]):02d}:{at[2]}"}))
    if "timer" in q and "set_timer" in tools and (duration := _duration(q)):
        label = re.search(r"(?:a|an|the) (\w+) timer", q)
        args: dict[str, Any] = dict(duration)
        if label and label[1] not in NUMBERS:
            args["label"] = label[1]
        return Reply(tool=ToolRequest("set_timer", args))
    if "story" in q or "long answer" in q:
        return Reply(LONG_ANSWER)
    if "hello" in q or "are you there" in q:
        return Reply("Hello there! I am here. How can I help you today?")
    return Reply(f'You said: "{user}".')


NUMBERS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90}


def _duration(q: str) -> dict[str, int] | None:
    """ "set a timer for five seconds" -> {"seconds": 5}; None when no duration is said."""
    out: dict[str, int] = {}
    for num, unit in re.findall(r"(\d+|[a-z]+) (second|minute|hour)s?\b", q):
        value = int(num) if num.isdigit() else NUMBERS.get(num)
        if value is not None:
            out[unit + "s"] = value
    return out or None


def after_tool(request: ToolRequest, response: Any) -> str:
    """The spoken answer once the client returned the tool's result."""
    if isinstance(response, dict) and "error" in response:
        return f"Sorry, that did not work: {response['error']}."
    if request.name == "set_volume":
        return f"Done. I turned the volume down to {request.args.get('level')} percent."
    if request.name == "set_alarm" and isinstance(response, dict) and "set" in response:
        return f"Okay, your alarm is set for {response['set'].get('rings_at', 'then')}."
    if request.name == "set_timer" and isinstance(response, dict) and "set" in response:
        return f"Okay, your timer is set for {response['set'].get('left', 'that long')}."
    return "Done."


def tokens(text: str) -> int:
    """A deterministic token count: words, at least one."""
    return max(1, len(text.split()))
