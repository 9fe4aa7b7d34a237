"""The timer tools as the model calls them: arguments in, results the model reads out."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.simulator import brain
from device.timers.book import TimerBook
from device.timers.tools import TIMER_TOOL_NAMES, TimerTools
from device.tools import ToolExecutor, local_tools
from tests.test_tools import Host
from tests.timers.test_book import TZ, Clock

pytestmark = pytest.mark.unit


def executor(tmp_path: Path, clock: Clock) -> ToolExecutor:
    return ToolExecutor(Host(), TimerTools(TimerBook(tmp_path, clock=clock, tz=TZ)))


def test_declared_with_the_other_local_tools() -> None:
    names = {t.name for t in local_tools()}
    assert {"set_timer", "set_alarm", "list_timers", "cancel_timer", "snooze"} == TIMER_TOOL_NAMES
    assert names >= TIMER_TOOL_NAMES


def test_set_list_and_time_left(tmp_path: Path) -> None:
    clock = Clock()
    ex = executor(tmp_path, clock)
    out = ex.run("set_timer", {"minutes": 9, "label": "pasta"})
    assert out["set"]["name"] == "pasta timer" and out["set"]["left"] == "9 minutes"
    ex.run("set_timer", {"seconds": 30})
    ex.run("set_alarm", {"time": "7:30", "weekdays": ["monday", "Friday"], "label": "work"})
    clock.run(6 * 60)
    pending = ex.run("list_timers", {})["pending"]
    assert [p["name"] for p in pending] == ["timer", "pasta timer", "work (07:30 alarm)"]
    assert pending[1]["left"] == "3 minutes"
    assert pending[2]["rings_at"] == "Friday 07:30" and pending[2]["repeats"] == [
        "monday",
        "friday",
    ]


def test_what_rang_is_reported_with_how_long_ago(tmp_path: Path) -> None:
    clock = Clock()
    book = TimerBook(tmp_path, clock=clock, tz=TZ)
    ex = ToolExecutor(Host(), TimerTools(book))
    ex.run("set_timer", {"minutes": 1, "label": "pasta"})
    clock.run(60)
    book.check()
    clock.run(120)
    (recent,) = ex.run("list_timers", {})["recent"]
    assert recent["name"] == "pasta timer" and recent["said"] == "went off 2 minutes ago"
    snoozed = ex.run("snooze", {"minutes": 5})["snoozed"]
    assert snoozed["name"] == "pasta timer" and snoozed["left"] == "5 minutes"


def test_cancel_by_id_label_and_all(tmp_path: Path) -> None:
    ex = executor(tmp_path, Clock())
    a = ex.run("set_timer", {"minutes": 1, "label": "eggs"})["set"]["id"]
    ex.run("set_timer", {"minutes": 2, "label": "tea"})
    ex.run("set_timer", {"minutes": 3})
    assert ex.run("cancel_timer", {"id": a})["cancelled"][0]["name"] == "eggs timer"
    assert "error" in ex.run("cancel_timer", {"id": a})
    assert ex.run("cancel_timer", {"label": "Tea"})["cancelled"][0]["name"] == "tea timer"
    assert len(ex.run("cancel_timer", {"all": True})["cancelled"]) == 1
    assert ex.run("list_timers", {})["pending"] == []


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("set_timer", {}),
        ("set_timer", {"seconds": -5}),
        ("set_timer", {"hours": 1e400}),
        ("set_timer", {"minutes": "soon"}),
        ("set_timer", {"hours": 25}),
        ("set_alarm", {"time": "25:00"}),
        ("set_alarm", {"time": "seven"}),
        ("set_alarm", {"time": "07:00", "weekdays": ["caturday"]}),
        ("cancel_timer", {}),
        ("snooze", {}),
    ],
)
def test_bad_arguments_answer_with_an_error(
    tmp_path: Path, name: str, args: dict[str, object]
) -> None:
    out = executor(tmp_path, Clock()).run(name, args)
    assert set(out) == {"error"}, out


def test_without_a_book_the_tools_say_so() -> None:
    assert "error" in ToolExecutor(Host()).run("set_timer", {"seconds": 5})


def test_the_simulated_model_sets_a_timer_from_what_it_heard() -> None:
    tools = {"set_timer"}
    reply = brain.answer("Set a timer for five seconds.", (), tools)
    assert reply.tool == brain.ToolRequest("set_timer", {"seconds": 5})
    reply = brain.answer("Set a pasta timer for 9 minutes", (), tools)
    assert reply.tool == brain.ToolRequest("set_timer", {"minutes": 9, "label": "pasta"})
    assert brain.answer("Set a timer for five seconds", (), set()).tool is None
    said = brain.after_tool(reply.tool, {"set": {"left": "9 minutes"}})
    assert said == "Okay, your timer is set for 9 minutes."
    alarm = brain.answer("set an alarm for 7:05", (), {"set_alarm"})
    assert alarm.tool == brain.ToolRequest("set_alarm", {"time": "07:05"})
