"""The button on gpiozero mock pins: events arrive on the asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.button import ButtonEvent, HardwareButton
from device.config import ButtonConfig
from device.events import ButtonHeld, ButtonPressed, ButtonReleased

pytestmark = pytest.mark.unit


@pytest.fixture
def factory() -> Iterator[Any]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


async def collect(q: asyncio.Queue[ButtonEvent], n: int) -> list[type]:
    return [type(await asyncio.wait_for(q.get(), 5)) for _ in range(n)]


async def test_short_press_and_hold(factory: Any) -> None:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[ButtonEvent] = asyncio.Queue()
    thread_ok: list[bool] = []

    def on_event(ev: ButtonEvent) -> None:
        thread_ok.append(asyncio.get_running_loop() is loop)
        q.put_nowait(ev)

    btn = HardwareButton(ButtonConfig(pin=23, hold_s=0.5, bounce_s=0), factory, loop, on_event)
    pin = factory.pin(23)
    pin.drive_low()
    await asyncio.sleep(0.05)
    pin.drive_high()
    assert await collect(q, 2) == [ButtonPressed, ButtonReleased]
    pin.drive_low()
    assert await collect(q, 2) == [ButtonPressed, ButtonHeld]
    pin.drive_high()
    await asyncio.sleep(0.2)
    assert q.empty()  # releasing after a hold is not a short press
    assert thread_ok and all(thread_ok)
    btn.close()


async def test_pull_down_button(factory: Any) -> None:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[ButtonEvent] = asyncio.Queue()
    btn = HardwareButton(
        ButtonConfig(pin=24, pull_up=False, hold_s=2, bounce_s=0), factory, loop, q.put_nowait
    )
    factory.pin(24).drive_high()
    await asyncio.sleep(0.05)
    factory.pin(24).drive_low()
    assert await collect(q, 2) == [ButtonPressed, ButtonReleased]
    btn.close()
