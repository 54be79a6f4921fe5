# SPDX-License-Identifier: MIT
"""Where the patterns appear: a GPIO LED, a green/red pair, an RGB LED, or the board's ACT LED.

Each indicator has ``show(level, colour)`` and ``close()``. GPIO ones use gpiozero with the
keyword arguments that 1.6.2 (Debian) and 2.0.x (PyPI) share. Without usable GPIO the agent
falls back to the ACT LED through sysfs, and without that to nothing, logging why: a missing
LED must not crash-loop the agent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from .config import LedConfig, LedKind
from .patterns import Colour

log = logging.getLogger("ewindow-agent")
LEDS = Path("/sys/class/leds")


class Indicator(Protocol):
    name: str

    def show(self, level: float, colour: Colour) -> None: ...

    def close(self) -> None: ...


class NoIndicator:
    name = "none"

    def show(self, level: float, colour: Colour) -> None:
        pass

    def close(self) -> None:
        pass


class SingleLed:
    name = "single"

    def __init__(self, pin: int, active_high: bool, factory: Any = None) -> None:
        from gpiozero import LED

        self.led = LED(f"GPIO{pin}", active_high=active_high, pin_factory=factory)

    def show(self, level: float, colour: Colour) -> None:
        self.led.value = 1 if level > 0 else 0

    def close(self) -> None:
        self.led.close()


class DualLed:
    """Green and red: green carries the OK/VPN states, red faults, both the amber ones."""

    name = "dual"

    def __init__(self, green: int, red: int, active_high: bool, factory: Any = None) -> None:
        from gpiozero import LEDBoard

        self.board = LEDBoard(green=f"GPIO{green}", red=f"GPIO{red}", active_high=active_high,
                              pin_factory=factory)

    def show(self, level: float, colour: Colour) -> None:
        red, green = colour[0] >= 0.5, colour[1] >= 0.5
        if not (red or green):  # blue (identify): both
            red = green = True
        on = 1 if level > 0 else 0
        self.board.green.value = on if green else 0
        self.board.red.value = on if red else 0

    def close(self) -> None:
        self.board.close()


class RgbLed:
    name = "rgb"

    def __init__(self, red: int, green: int, blue: int, active_high: bool, factory: Any = None) -> None:
        from gpiozero import RGBLED
        from gpiozero.exc import PinPWMUnsupported

        pins = (f"GPIO{red}", f"GPIO{green}", f"GPIO{blue}")
        try:
            self.led = RGBLED(*pins, active_high=active_high, pin_factory=factory)
            self.pwm = True
        except PinPWMUnsupported:  # e.g. the libgpiod factory: plain on/off colours
            self.led = RGBLED(*pins, active_high=active_high, pwm=False, pin_factory=factory)
            self.pwm = False

    def show(self, level: float, colour: Colour) -> None:
        value = tuple(level * c for c in colour)
        self.led.value = value if self.pwm else tuple(1 if c >= 0.5 else 0 for c in value)

    def close(self) -> None:
        self.led.close()


class ActLed:
    """The board's activity LED through sysfs: trigger "none", then brightness by hand.

    Newer kernels call it ACT, older ones led0. The agent's group may write ``trigger`` and
    ``brightness`` (udev rule in the image). ``close`` gives it back to the SD card (mmc0)."""

    name = "act"

    def __init__(self, leds: Path = LEDS) -> None:
        found = next((leds / n for n in ("ACT", "led0") if (leds / n / "brightness").exists()), None)
        if found is None:
            raise OSError(f"no ACT or led0 under {leds}")
        self.path = found
        maximum = found / "max_brightness"
        self.on_value = maximum.read_text().strip() if maximum.exists() else "1"
        (found / "trigger").write_text("none")
        self.last = ""

    def show(self, level: float, colour: Colour) -> None:
        value = self.on_value if level > 0 else "0"
        if value != self.last:
            (self.path / "brightness").write_text(value)
            self.last = value

    def close(self) -> None:
        try:
            (self.path / "trigger").write_text("mmc0")
        except OSError:
            pass


def make_indicator(config: LedConfig, *, factory: Any = None, leds: Path = LEDS,
                   gpio_error: str = "") -> tuple[Indicator, str]:
    """The configured indicator, or the best fallback and why (``""`` when none was needed).
    ``gpio_error``: why there is no GPIO at all (no pin factory); straight to the fallback."""
    try:
        if gpio_error and config.kind is not LedKind.none:
            raise OSError(gpio_error)
        if config.kind is LedKind.single:
            return SingleLed(config.pins[0], config.active_high, factory), ""
        if config.kind is LedKind.dual:
            return DualLed(config.pins[0], config.pins[1], config.active_high, factory), ""
        if config.kind is LedKind.rgb:
            red, green, blue = config.pins[:3]
            return RgbLed(red, green, blue, config.active_high, factory), ""
        if config.kind is LedKind.none:
            return NoIndicator(), ""
    except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds (BadPinFactory, GPIOPinInUse, OSError)
        why = f"{config.kind.value} LED on GPIO {list(config.pins)} unusable ({type(exc).__name__}: {exc})"
    else:
        why = ""
    try:
        return ActLed(leds), why
    except OSError as exc:
        return NoIndicator(), "; ".join(filter(None, [why, f"no ACT LED ({exc})"]))
