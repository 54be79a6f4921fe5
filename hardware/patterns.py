# SPDX-License-Identifier: MIT
"""LED codes: what each state looks like, and the thread that plays them.

One LED (first true state wins; the RGB colour names the category, the rhythm is the same):

| State | Single LED | RGB colour |
|---|---|---|
| identify (button pressed) | bursts of 5 very fast flashes | blue |
| firstboot running | slow blink, 0.5 s on / 0.5 s off | white |
| fault (firstboot failed, agent trouble) | fast blink, 0.1 s / 0.1 s | red |
| updating (an unattended upgrade runs) | 3 long flashes, pause | white |
| no link (cable, Wi-Fi) | 1 flash, pause | amber |
| link, no IP address | 2 flashes, pause | amber |
| no Internet | 3 flashes, pause | amber |
| captive portal | 1 long, 1 short flash, pause | amber |
| clock not synchronised | 2 long flashes, pause | amber |
| VPN not configured | long on, long off (1.5 s / 1.5 s) | cyan |
| VPN down (nothing answers) | 1 short, 1 long flash, pause | magenta |
| VPN reaches a hub, no other window answers | on, with two short off-blips every 2 s | cyan-green |
| VPN up (another window answers) | on, with a short off-blip every 2 s | green |

Flash counts stop at 3 (people count 1, 2, 3 reliably). OK is "on with a blip", not steady
on, so a hung agent cannot look healthy. On the board's ACT LED the firmware already speaks in
short-flash counts (e.g. 4 long + 7 short = kernel not found), so ACT gets rhythms only: OK a
heartbeat, fault fast blink, link problems a slow 1 Hz blink, VPN problems a double blip,
firstboot a steady slow blink; a hub alone is the heartbeat's single beat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .state import State

Step = tuple[float, float]  # (level 0..1, seconds)
Pattern = tuple[Step, ...]
Colour = tuple[float, float, float]

SHORT, LONG, GAP, PAUSE = 0.2, 0.8, 0.3, 1.5


def flashes(*ons: float) -> Pattern:
    steps: list[Step] = []
    for on in ons:
        steps += [(1.0, on), (0.0, GAP)]
    steps[-1] = (0.0, PAUSE)
    return tuple(steps)


PATTERNS: dict[str, Pattern] = {
    State.identify: (*((1.0, 0.05), (0.0, 0.05)) * 5, (0.0, 0.5)),
    State.firstboot: ((1.0, 0.5), (0.0, 0.5)),
    State.fault: ((1.0, 0.1), (0.0, 0.1)),
    State.updating: flashes(LONG, LONG, LONG),
    State.no_link: flashes(SHORT),
    State.no_ip: flashes(SHORT, SHORT),
    State.no_internet: flashes(SHORT, SHORT, SHORT),
    State.captive: flashes(LONG, SHORT),
    State.clock: flashes(LONG, LONG),
    State.vpn_not_configured: ((1.0, 1.5), (0.0, 1.5)),
    State.vpn_down: flashes(SHORT, LONG),
    State.vpn_hub: ((1.0, 1.6), (0.0, 0.1), (1.0, 0.2), (0.0, 0.1)),
    State.vpn_up: ((1.0, 1.9), (0.0, 0.1)),
}

AMBER: Colour = (1.0, 0.5, 0.0)  # colorzero has no "amber"
WHITE: Colour = (1.0, 1.0, 1.0)
COLOURS: dict[str, Colour] = {
    State.identify: (0.0, 0.0, 1.0), State.firstboot: (1.0, 1.0, 1.0), State.fault: (1.0, 0.0, 0.0),
    State.updating: WHITE,
    State.no_link: AMBER, State.no_ip: AMBER, State.no_internet: AMBER, State.captive: AMBER,
    State.clock: AMBER, State.vpn_not_configured: (0.0, 1.0, 1.0), State.vpn_down: (1.0, 0.0, 1.0),
    State.vpn_hub: (0.0, 1.0, 0.5), State.vpn_up: (0.0, 1.0, 0.0),
}

HEARTBEAT: Pattern = ((1.0, 0.1), (0.0, 0.1), (1.0, 0.1), (0.0, 1.7))
ACT_PATTERNS: dict[str, Pattern] = {
    State.identify: PATTERNS[State.identify], State.firstboot: ((1.0, 1.0), (0.0, 1.0)),
    State.fault: PATTERNS[State.fault], State.vpn_up: HEARTBEAT, State.vpn_hub: ((1.0, 0.1), (0.0, 1.9)),
    State.updating: ((1.0, 1.0), (0.0, 1.0)),
    **{s: ((1.0, 0.5), (0.0, 0.5)) for s in (State.no_link, State.no_ip, State.no_internet, State.captive,
                                             State.clock)},
    **{s: ((1.0, 0.1), (0.0, 0.15), (1.0, 0.1), (0.0, 0.65)) for s in (State.vpn_not_configured,
                                                                       State.vpn_down)},
}

# While the button is held: what releasing now would do (see button.py).
HOLD_PATTERNS: dict[str, Pattern] = {"restart-vpn": ((1.0, 1.0),), "reboot": ((1.0, 0.1), (0.0, 0.1))}

Show = Callable[[float, Colour], None]


class PatternPlayer:
    """Plays one state's pattern forever on ``show(level, colour)``, in its own thread.

    ``play`` with the state already playing changes nothing (duplicate link events are
    common); another state starts its pattern at the beginning. ``scale`` stretches time
    (tests run patterns 10x faster)."""

    def __init__(self, show: Show, patterns: dict[str, Pattern] = PATTERNS, scale: float = 1.0) -> None:
        self.show, self.patterns, self.scale = show, patterns, scale
        self.state: str | None = None
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pattern-player", daemon=True)
        self.thread.start()

    def play(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.changed.set()

    def stop(self) -> None:
        self.stopping.set()
        self.changed.set()
        self.thread.join(timeout=2)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.changed.wait()
            self.changed.clear()
            while not self.stopping.is_set() and not self.changed.is_set() and self.state is not None:
                state = self.state
                for level, seconds in self.patterns[state]:
                    self.show(level, COLOURS.get(state, WHITE))
                    if self.changed.wait(seconds * self.scale):
                        break
