# SPDX-License-Identifier: MIT
"""The one button: how long it was held decides what happens, on release.

| Hold | On release | While holding |
|---|---|---|
| shorter than 3 s | identify: the LED plays the identify pattern, the identity is logged | – |
| 3 s to 10 s | restart the VPN | LED solid on from 3 s ("release now: VPN restart") |
| 10 s to 30 s | reboot | LED fast blink from 10 s ("release now: reboot") |
| longer than 30 s | nothing: a stuck button, or someone leaning on it | back to normal |

Nothing happens while the button is down; the classifier takes times from an injectable
clock, so tests need no real waiting. gpiozero's callbacks only post events (they run in
gpiozero's threads).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import ButtonConfig


class Action(enum.StrEnum):
    identify = "identify"
    restart_vpn = "restart-vpn"
    reboot = "reboot"
    ignored = "ignored"  # held too long


class Hold(enum.StrEnum):
    """What releasing now would do: shown on the LED while the button is down."""

    none = "none"
    restart_vpn = "restart-vpn"
    reboot = "reboot"
    stuck = "stuck"


RELEASED = {Hold.none: Action.identify, Hold.restart_vpn: Action.restart_vpn, Hold.reboot: Action.reboot,
            Hold.stuck: Action.ignored}


@dataclass
class PressClassifier:
    config: ButtonConfig
    clock: Callable[[], float] = time.monotonic
    pressed_at: float | None = None

    def press(self) -> None:
        self.pressed_at = self.clock()

    def holding(self) -> Hold:
        if self.pressed_at is None:
            return Hold.none
        held = self.clock() - self.pressed_at
        if held >= self.config.stuck_s:
            return Hold.stuck
        if held >= self.config.reboot_s:
            return Hold.reboot
        if held >= self.config.restart_vpn_s:
            return Hold.restart_vpn
        return Hold.none

    def release(self) -> Action | None:
        """The action for this press; None for a release without a press (start-up glitch)."""
        if self.pressed_at is None:
            return None
        hold = self.holding()
        self.pressed_at = None
        return RELEASED[hold]
