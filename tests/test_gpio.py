"""Choosing the pin factory from [gpio] pin_factory."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from device.config import ConfigError, GpioConfig
from device.gpio import has_gpio_chip, make_pin_factory

pytestmark = pytest.mark.unit


def test_mock_and_auto_without_a_gpio_chip() -> None:
    f = make_pin_factory(GpioConfig(pin_factory="mock"))
    assert isinstance(f, MockFactory)
    f.close()
    if not has_gpio_chip():  # CI and the test rig have none
        f = make_pin_factory(GpioConfig(pin_factory="auto"))
        assert isinstance(f, MockFactory)
        f.close()


def test_unknown_factory_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        make_pin_factory(GpioConfig(pin_factory="quantum"))
    assert "gpio.pin_factory" in str(err.value)
    assert "lgpio" in str(err.value)
