"""Local tools: declared specs and their execution against a host."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from device.tools import ToolExecutor, local_tools

pytestmark = pytest.mark.unit


@dataclass
class Host:
    volume: int = 50
    ended: int = 0
    muted: int = 0

    def get_volume(self) -> int:
        return self.volume

    def set_volume(self, level: int) -> None:
        self.volume = level

    def request_end(self) -> None:
        self.ended += 1

    def request_mute(self) -> None:
        self.muted += 1


def test_specs() -> None:
    names = [t.name for t in local_tools()]
    assert names[:4] == ["set_volume", "get_volume", "end_conversation", "mute"]
    assert "set_timer" in names  # the timer tools: tests/timers/test_tools.py
    assert all(t.parameters["type"] == "object" for t in local_tools())


def test_volume_absolute_relative_and_clamped() -> None:
    host = Host()
    ex = ToolExecutor(host)
    assert ex.run("set_volume", {"level": 30}) == {"volume": 30, "previous": 50}
    assert ex.run("set_volume", {"direction": "down"}) == {"volume": 20, "previous": 30}
    assert ex.run("set_volume", {"direction": "up", "step": 95}) == {"volume": 100, "previous": 20}
    assert ex.run("get_volume", {}) == {"volume": 100}
    assert "error" in ex.run("set_volume", {})
    assert "error" in ex.run("set_volume", {"level": "loud"})
    assert host.volume == 100


def test_end_mute_and_unknown() -> None:
    host = Host()
    ex = ToolExecutor(host)
    assert "result" in ex.run("end_conversation", {})
    assert "result" in ex.run("mute", {})
    assert host.ended == 1 and host.muted == 1
    assert "error" in ex.run("self_destruct", {})


def test_out_of_range_numbers_get_an_error_back_not_a_crash() -> None:
    """The SDK parses tool arguments as JSON: 1e400 arrives as float('inf') (int() of it raises
    OverflowError), NaN as float('nan'). Each gets a clear error naming the argument; nothing
    changes."""
    import json

    host = Host()
    ex = ToolExecutor(host)
    for raw in (
        '{"level": 1e400}',
        '{"level": -1e400}',
        '{"level": NaN}',
        '{"direction": "up", "step": 1e400}',
        '{"direction": "down", "step": NaN}',
    ):
        args = json.loads(raw)
        out = ex.run("set_volume", args)
        assert set(out) == {"error"}, (raw, out)
        name = "level" if "level" in args else "step"
        assert name in out["error"] and "finite" in out["error"], out
    assert host.volume == 50
    assert ex.run("set_volume", json.loads('{"level": 1e2}')) == {"volume": 100, "previous": 50}
    assert ex.run("set_volume", {"level": 1e300}) == {"volume": 100, "previous": 100}
