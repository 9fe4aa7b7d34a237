"""The wiring diagram in README (docs/wiring.svg), drawn from the configured pins.

    uv run python -m device.wiring [--config PATH] > docs/wiring.svg

The 40-pin header in the middle; parts on odd (left-column) pins are drawn on the left, parts on
even pins on the right, each wired to the nearest ground (or 3V3 for active-low LEDs).
A test keeps docs/wiring.svg equal to the drawing for the default config.
"""

from __future__ import annotations

import argparse
import sys
from html import escape

from device.config import Config, load_config

# Physical header pin -> BCM GPIO number, or a power/ground name.
HEADER: dict[int, int | str] = {
    1: "3V3", 2: "5V", 3: 2, 4: "5V", 5: 3, 6: "GND", 7: 4, 8: 14, 9: "GND", 10: 15,
    11: 17, 12: 18, 13: 27, 14: "GND", 15: 22, 16: 23, 17: "3V3", 18: 24, 19: 10, 20: "GND",
    21: 9, 22: 25, 23: 11, 24: 8, 25: "GND", 26: 7, 27: 0, 28: 1, 29: 5, 30: "GND",
    31: 6, 32: 12, 33: 13, 34: "GND", 35: 19, 36: 16, 37: 26, 38: 20, 39: "GND", 40: 21,
}  # fmt: skip
LED_COLOURS = {
    "led_red": "#e03030", "led_green": "#20a040", "led_blue": "#3050e0", "led": "#e0a020",
    "led_listening": "#3050e0", "led_responding": "#20a040", "led_error": "#e03030",
}  # fmt: skip
TOP, ROW, W = 60, 30, 900
LEFT_X, RIGHT_X = 420, 480
"""x of the odd and even pin columns."""


def physical_pin(bcm: int) -> int:
    """Header pin number of a BCM GPIO."""
    return next(p for p, v in HEADER.items() if v == bcm)


def _y(pin: int) -> int:
    return TOP + (pin - 1) // 2 * ROW


def _x(pin: int) -> int:
    return LEFT_X if pin % 2 else RIGHT_X


def _nearest(pin: int, name: str) -> int:
    """The nearest header pin called `name` on the same side (else any side)."""
    same = [p for p, v in HEADER.items() if v == name and p % 2 == pin % 2]
    pool = same or [p for p, v in HEADER.items() if v == name]
    return min(pool, key=lambda p: abs(p - pin))


def _header(used: set[int]) -> list[str]:
    out = [f'<rect x="{LEFT_X - 16}" y="{TOP - 16}" width="{RIGHT_X - LEFT_X + 32}" '
           f'height="{20 * ROW + 10}" rx="6" fill="#1d3b2a"/>']  # fmt: skip
    for pin, name in HEADER.items():
        x, y = _x(pin), _y(pin)
        label = f"GPIO{name}" if isinstance(name, int) else name
        fill = {"GND": "#222", "3V3": "#c33", "5V": "#c33"}.get(str(name), "#d4af37")
        out.append(
            f'<circle cx="{x}" cy="{y}" r="6" fill="{fill}" stroke="#fff" stroke-width="1"/>'
        )
        tx, anchor = (x - 22, "end") if pin % 2 else (x + 22, "start")
        # A wired pin's label sits above its wire.
        ty, cls = (y - 6, "pin used") if pin in used else (y + 4, "pin")
        out.append(
            f'<text x="{tx}" y="{ty}" text-anchor="{anchor}" class="{cls}">{pin} {label}</text>'
        )
    return out


def _part(role: str, bcm: int, rail: str) -> list[str]:
    """A wire from the pin to a part and from the part to the rail (GND / 3V3)."""
    pin = physical_pin(bcm)
    rail_pin = _nearest(pin, rail)
    x, y = _x(pin), _y(pin)
    side = -1 if pin % 2 else 1
    x1 = x + side * 130
    x2 = x + side * 230
    x3 = x + side * 330
    ry, rx = _y(rail_pin), _x(rail_pin)
    out = [f'<polyline points="{x + side * 8},{y} {x1},{y}" class="wire"/>']
    if role == "button":
        out += [
            f'<line x1="{x1}" y1="{y}" x2="{x2 - side * 30}" y2="{y}" class="wire"/>',
            f'<line x1="{x2 - side * 30}" y1="{y}" x2="{x2 + side * 10}" y2="{y - 14}" class="wire"/>',
            f'<line x1="{x2 + side * 10}" y1="{y}" x2="{x3}" y2="{y}" class="wire"/>',
            f'<text x="{x2}" y="{y - 20}" text-anchor="middle" class="part">button</text>',
        ]
    else:
        colour = LED_COLOURS.get(role, "#e0a020")
        rx1, rx2 = sorted((x1, x1 + side * 50))
        out += [
            f'<rect x="{rx1}" y="{y - 6}" width="{rx2 - rx1}" height="12" fill="#c8a165" stroke="#333"/>',
            f'<text x="{(rx1 + rx2) // 2}" y="{y - 10}" text-anchor="middle" class="part">220 Ω</text>',
            f'<line x1="{x1 + side * 50}" y1="{y}" x2="{x2 - side * 12}" y2="{y}" class="wire"/>',
            f'<circle cx="{x2}" cy="{y}" r="12" fill="{colour}" stroke="#333"/>',
            f'<text x="{x2 + side * 16}" y="{y - 4}" text-anchor="{"end" if side < 0 else "start"}" class="part">'
            f"{escape(role.removeprefix('led_').replace('led', 'LED'))}</text>",
            f'<line x1="{x2 + side * 12}" y1="{y}" x2="{x3}" y2="{y}" class="wire"/>',
        ]
    # To the rail: out to a bus at x3, then along it to the rail pin's row, then in to the pin.
    out.append(
        f'<polyline points="{x3},{y} {x3},{ry} {rx + side * 8 if rail_pin % 2 == pin % 2 else rx},{ry}" class="rail"/>'
    )
    return out


def wiring_svg(cfg: Config) -> str:
    """The diagram for this config's [leds] and [button] pins."""
    from device.doctor.gpio import configured_pins

    rail = "GND" if cfg.leds.active_high else "3V3"
    parts: list[str] = []
    used: set[int] = set()
    for role, bcm in configured_pins(cfg):
        part_rail = "GND" if role == "button" else rail
        parts += _part(role, bcm, part_rail)
        used |= {physical_pin(bcm), _nearest(physical_pin(bcm), part_rail)}
    h = TOP + 20 * ROW + 50
    common = (
        "LED cathodes (common cathode) and the button to GND"
        if cfg.leds.active_high
        else "LED anodes to 3V3 (common anode), the button to GND"
    )
    title = f"livespeaker wiring: [leds] mode = {cfg.leds.mode.value}, button {'on GPIO' + str(cfg.button.pin) if cfg.button.enabled else 'off'}"
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}">',
            "<style>.pin{font:11px sans-serif;fill:#222}.part{font:12px sans-serif;fill:#222}"
            ".wire{stroke:#555;stroke-width:2;fill:none}.rail{stroke:#111;stroke-width:2;"
            "fill:none;stroke-dasharray:5 3}.title{font:bold 14px sans-serif}"
            ".used{font-weight:bold}</style>",
            '<rect width="100%" height="100%" fill="#fff"/>',
            f'<text x="{W // 2}" y="24" text-anchor="middle" class="title">{escape(title)}</text>',
            *_header(used),
            *parts,
            f'<text x="{W // 2}" y="{h - 30}" text-anchor="middle" class="pin">'
            "Raspberry Pi 40-pin header, pin 1 top left. Solid: GPIO → 220 Ω → LED; "
            "GPIO → button (internal pull-up).</text>",
            f'<text x="{W // 2}" y="{h - 12}" text-anchor="middle" class="pin">Dashed: {common}.</text>',
            "</svg>",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the SVG for the given (or default) config."""
    p = argparse.ArgumentParser(description="Print the wiring diagram (SVG) for a config.")
    p.add_argument("--config", help="config file (default: built-in defaults)")
    args = p.parse_args(argv)
    cfg = load_config(args.config)[0] if args.config else Config()
    sys.stdout.write(wiring_svg(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
