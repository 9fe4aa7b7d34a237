"""The README's wiring diagram is drawn from the config's pin defaults and kept in sync."""

from __future__ import annotations

import re
import xml.dom.minidom
from pathlib import Path

import pytest

from device.config import Config
from device.wiring import physical_pin, wiring_svg

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_docs_wiring_svg_matches_the_defaults() -> None:
    # Regenerate with: uv run python -m device.wiring > docs/wiring.svg
    assert (ROOT / "docs" / "wiring.svg").read_text() == wiring_svg(Config())


def test_wired_pins_are_the_configured_ones() -> None:
    svg = wiring_svg(Config())
    xml.dom.minidom.parseString(svg)  # well-formed
    used = set(re.findall(r'class="pin used">(\d+) ', svg))
    # RGB on GPIO17/27/22 (pins 11/13/15) to GND pin 9; button GPIO23 (pin 16) to GND pin 14.
    assert used == {"9", "11", "13", "15", "14", "16"}


def test_per_state_leds_and_a_moved_button() -> None:
    cfg = Config.model_validate({"leds": {"mode": "per_state"}, "button": {"pin": 26}})
    svg = wiring_svg(cfg)
    used = {int(p) for p in re.findall(r'class="pin used">(\d+) ', svg)}
    assert {physical_pin(5), physical_pin(6), physical_pin(13), physical_pin(26)} <= used
    assert ">listening</text>" in svg and ">error</text>" in svg


def test_physical_pins() -> None:
    assert [physical_pin(b) for b in (17, 27, 22, 23, 25)] == [11, 13, 15, 16, 22]
