# SPDX-License-Identifier: MIT
"""A gpiozero pin factory on the kernel's GPIO character device, through libgpiod 2.

Why: on Debian's arm64 kernel none of gpiozero's own factories work unprivileged. RPi.GPIO's
board detection looks for a BCM "Hardware" line in /proc/cpuinfo, which arm64 kernels do not
print; lgpio is not packaged in Debian, and PyPI has no wheel for trixie's Python 3.13
(shared/reference/device-agent.md §1.4); "native" needs /dev/gpiomem or /dev/mem as root.
Debian does package python3-libgpiod (2.x on trixie), and /dev/gpiochipN only needs the gpio
group. Registered as the ``ewindow-gpiod`` entry point of ``gpiozero_pin_factories`` (the
image ships its dist-info), so ``GPIOZERO_PIN_FACTORY=ewindow-gpiod`` selects it.

Works with gpiozero 1.6.2 (Debian) and 2.0.x: both build on ``PiFactory``/``PiPin``, which
differ only in what a pin is made from (a number, or a ``PinInfo``).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import gpiod  # python3-libgpiod >= 2
from gpiod.line import Bias, Direction, Edge, Value
from gpiozero.exc import PinInvalidBounce, PinInvalidEdges, PinInvalidFunction, PinInvalidPull, PinSetInput
from gpiozero.pins.pi import PiFactory, PiPin

CONSUMER = "ewindow-agent"
# The SoC's own GPIO controller: Pi 1-3, Pi 4/400, Pi 5 (RP1).
CHIP_LABELS = ("pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1")
DEFAULT_REVISION = 0xA02082  # a Pi 3 B: only used to name header pins, all 40-pin boards agree
PULLS = {"up": Bias.PULL_UP, "down": Bias.PULL_DOWN, "floating": Bias.DISABLED}
EDGES = {"both": Edge.BOTH, "rising": Edge.RISING, "falling": Edge.FALLING, "none": Edge.NONE}


def find_chip(dev: Path = Path("/dev")) -> Path:
    chips = sorted(dev.glob("gpiochip*"), key=lambda p: int(p.name.removeprefix("gpiochip") or 0))
    for path in chips:
        try:
            with gpiod.Chip(str(path)) as chip:
                if chip.get_info().label in CHIP_LABELS:
                    return path
        except OSError:
            continue
    if chips:
        return chips[0]
    raise OSError(f"no GPIO chip under {dev}")


def board_revision(dt: Path = Path("/proc/device-tree/system/linux,revision")) -> int:
    try:
        return int.from_bytes(dt.read_bytes()[:4], "big") or DEFAULT_REVISION
    except OSError:
        return DEFAULT_REVISION


class GpiodFactory(PiFactory):  # type: ignore[misc]  # gpiozero has no type hints
    def __init__(self, chip: str | None = None) -> None:
        super().__init__()
        self.chip = gpiod.Chip(chip or str(find_chip()))
        self.pin_class = GpiodPin

    def _get_revision(self) -> int:
        return board_revision()

    def close(self) -> None:
        super().close()
        self.chip.close()

    def ticks(self) -> float:
        return time.monotonic()

    def ticks_diff(self, later: float, earlier: float) -> float:
        return later - earlier


class GpiodPin(PiPin):  # type: ignore[misc]
    """One line, requested for the pin's whole life and reconfigured in place."""

    def __init__(self, factory: GpiodFactory, spec: Any) -> None:
        super().__init__(factory, spec)
        # gpiozero 1.6 gives the GPIO number, 2.0 a PinInfo named "GPIO<n>"
        self.offset = spec if isinstance(spec, int) else int(str(spec.name).removeprefix("GPIO"))
        self.chip: gpiod.Chip = factory.chip
        self._function, self._pull, self._edges, self._bounce = "input", "floating", "both", 0.0
        self._value = Value.INACTIVE
        self._events = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._request = self.chip.request_lines(config={self.offset: self._settings()}, consumer=CONSUMER)

    def _settings(self) -> gpiod.LineSettings:
        if self._function == "output":
            return gpiod.LineSettings(direction=Direction.OUTPUT, output_value=self._value)
        return gpiod.LineSettings(
            direction=Direction.INPUT, bias=PULLS[self._pull],
            edge_detection=EDGES[self._edges] if self._events else Edge.NONE,
            debounce_period=timedelta(seconds=self._bounce))

    def _apply(self) -> None:
        self._request.reconfigure_lines(config={self.offset: self._settings()})

    def close(self) -> None:
        self._stop_events()
        # back to an input: high-impedance, as gpiozero's own factories leave a pin
        self._function, self._events = "input", False
        try:
            self._apply()
        finally:
            self._request.release()

    def _get_function(self) -> str:
        return self._function

    def _set_function(self, value: str) -> None:
        if value not in ("input", "output"):
            raise PinInvalidFunction(f"invalid function {value} for GPIO{self.offset}")
        self._function = value
        self._apply()

    def _get_state(self) -> int:
        return 1 if self._request.get_value(self.offset) == Value.ACTIVE else 0

    def _set_state(self, value: float) -> None:
        if self._function != "output":
            raise PinSetInput(f"cannot set the state of input GPIO{self.offset}")
        self._value = Value.ACTIVE if value else Value.INACTIVE
        self._request.set_value(self.offset, self._value)

    def _get_pull(self) -> str:
        return self._pull

    def _set_pull(self, value: str) -> None:
        if self._function != "input" or value not in PULLS:
            raise PinInvalidPull(f"invalid pull {value} for GPIO{self.offset}")
        self._pull = value
        self._apply()

    def _get_bounce(self) -> float | None:
        return self._bounce or None

    def _set_bounce(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise PinInvalidBounce("bounce must be 0 or greater")
        self._bounce = value or 0.0  # the kernel debounces in software where the chip cannot
        self._apply()

    def _get_edges(self) -> str:
        return self._edges

    def _set_edges(self, value: str) -> None:
        if value not in EDGES:
            raise PinInvalidEdges(f"invalid edges {value} for GPIO{self.offset}")
        self._edges = value
        self._apply()

    def _enable_event_detect(self) -> None:
        self._events = True
        self._apply()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name=f"gpiod-{self.offset}", daemon=True)
        self._thread.start()

    def _disable_event_detect(self) -> None:
        self._stop_events()
        self._events = False
        self._apply()

    def _stop_events(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1)
        self._thread = None

    def _watch(self) -> None:
        while not self._stop.is_set():
            if not self._request.wait_edge_events(timedelta(seconds=0.2)):
                continue
            for event in self._request.read_edge_events():
                rising = event.event_type == gpiod.EdgeEvent.Type.RISING_EDGE
                self._call_when_changed(self._factory.ticks(), 1 if rising else 0)
