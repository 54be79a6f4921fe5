# SPDX-License-Identifier: MIT
"""The agent: one thread owns the state; netlink, the button and the slow checks post events.

Main loop, every second at most: handle events, debounce link loss, expire identify, run the
slow checks in workers (the Internet every ``probe.interval_s``, the VPN every
``probe.vpn_interval_s``), show the state, and tell systemd it is alive (WATCHDOG=1) only when
every worker thread still runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import actions, facts, metrics, tapguard, vpnprobe
from .button import Action, Hold, PressClassifier
from .config import AgentConfig
from .indicators import Indicator
from .linkwatch import RESYNC
from .notify import notify
from .patterns import HOLD_PATTERNS, PATTERNS, Pattern, PatternPlayer
from .state import Facts, State, derive_state

log = logging.getLogger("ewindow-agent")
Event = tuple[str, Any]
RESYNC_S = 30.0  # read every link from sysfs this often, whatever netlink said
METRICS_S = 5.0  # the metrics file is written this often (metrics.py)


@dataclasses.dataclass(frozen=True)
class Paths:
    sys: Path = Path("/sys")
    firstboot: Path = facts.FIRSTBOOT_STATUS
    updating: Path = facts.UPDATING
    upgrade: Path = metrics.UPGRADE_STATE
    dpkg_status: Path = metrics.DPKG_STATUS
    metrics_dir: Path = metrics.TEXTFILE_DIR
    synchronized: Path = facts.SYNCHRONIZED
    requests: Path = actions.REQUEST_DIR
    vpn_state: Path = Path("/run/ewindow/vpn")
    vpn_active: Path = Path("/var/lib/ewindow/vpn/active.json")  # written by firstboot
    identity: Path = Path("/var/lib/ewindow/identity.json")
    tap_guard: Path = tapguard.STATE_FILE  # frames from tap0's own MAC (ewindow-tap-guard.service)


def internet_check(config: AgentConfig) -> dict[str, Any]:
    probe = config.probe
    return {"internet": facts.internet(probe.internet_url, probe.internet_expect)}


class VpnCheck:
    """The VPN's facts: seconds each, so they run outside the main loop. It keeps when each
    cjdns peer last sent something between calls (vpnprobe.PeerActivity). ``vpn_peers`` and
    ``vpn_hubs`` (each backend's own counts) are for the metrics, the rest are facts."""

    def __init__(self, config: AgentConfig, paths: Paths) -> None:
        self.config, self.paths = config, paths
        self.activity = vpnprobe.PeerActivity()

    def __call__(self) -> dict[str, Any]:
        probe, paths = self.config.probe, self.paths
        active = facts.active_backends(paths.vpn_active, probe.vpn_backends)
        card = facts.card_hubs(paths.vpn_active)
        hubs = card.get("addresses", ())
        statuses = facts.vpn_statuses(active, probe.vpn_targets, paths.vpn_state, probe.tap, hubs=hubs,
                                      card=card, activity=self.activity)
        return {"vpn_configured": bool(active),
                "vpn_up": bool(active) and facts.vpn_up(statuses, probe.vpn_targets, probe.tap, paths.sys,
                                                        hubs),
                "vpn_hub": any(s.hubs for s in statuses),
                "mac_conflict": any(s.mac_conflict for s in statuses)
                or tapguard.seen_recently(paths.tap_guard),
                "vpn_peers": {s.backend: s.peers for s in statuses},
                "vpn_hubs": {s.backend: s.hubs for s in statuses}}


class Worker:
    """One slow check, run in its own thread every ``interval_s``; its result is posted."""

    def __init__(self, name: str, check: Callable[[], dict[str, Any]], interval_s: float,
                 post: Callable[[str, Any], None]) -> None:
        self.name, self.check, self.interval_s, self.post = name, check, interval_s, post
        self.next_run = 0.0
        self.thread: threading.Thread | None = None

    def start_if_due(self, now: float) -> None:
        if now >= self.next_run and (self.thread is None or not self.thread.is_alive()):
            self.next_run = now + self.interval_s
            self.thread = threading.Thread(target=lambda: self.post("checks", self.check()), name=self.name,
                                           daemon=True)
            self.thread.start()


class Agent:
    def __init__(self, config: AgentConfig, indicator: Indicator, *, paths: Paths = Paths(),
                 clock: Callable[[], float] = time.monotonic, scale: float = 1.0,
                 patterns: dict[str, Pattern] | None = None,
                 checks: Callable[[], dict[str, Any]] | None = None,
                 vpn_checks: Callable[[], dict[str, Any]] | None = None) -> None:
        self.config, self.indicator, self.paths, self.clock = config, indicator, paths, clock
        self.events: queue.Queue[Event] = queue.Queue()
        self.player = PatternPlayer(indicator.show, {**(patterns or PATTERNS), **HOLD_PATTERNS}, scale)
        self.classifier = PressClassifier(config.button, clock)
        probe = config.probe
        self.checkers = [
            Worker("internet", checks or (lambda: internet_check(config)), probe.interval_s, self.post),
            Worker("vpn", vpn_checks or VpnCheck(config, paths), probe.vpn_interval_s, self.post)]
        self.facts = Facts(vpn_configured=bool(facts.active_backends(paths.vpn_active,
                                                                     config.probe.vpn_backends)))
        self.down_since: float | None = None
        self.identify_until = 0.0
        self.next_resync = clock() + RESYNC_S
        self.workers: list[Any] = [self.player]
        self.shown = ""
        self.vpn_logged = ""
        self.peers: dict[str, int | None] = {}
        self.hubs: dict[str, int] = {}
        self.next_metrics = 0.0
        self.metrics_failed = False
        self.read_links()

    # --- events ---------------------------------------------------------------------------

    def post(self, kind: str, value: Any = None) -> None:
        """Thread-safe: what netlink, the button callbacks and the checker call."""
        self.events.put((kind, value))

    def handle(self, event: Event) -> Action | None:
        kind, value = event
        if kind == "link":
            self.read_links()
        elif kind == "checks":
            self.peers = value.pop("vpn_peers", self.peers)
            self.hubs = value.pop("vpn_hubs", self.hubs)
            self.facts = dataclasses.replace(self.facts, **value)
        elif kind == "pressed":
            self.classifier.press()
        elif kind == "released":
            action = self.classifier.release()
            if action is not None:
                self.act(action)
            return action
        return None

    def read_links(self) -> None:
        up = facts.any_link_up(self.config.probe.interfaces, self.paths.sys)
        if up:  # a link coming back is shown at once, a loss only after the debounce
            self.down_since = None
            self.facts = dataclasses.replace(self.facts, link_up=True)
        elif self.facts.link_up and self.down_since is None:
            self.down_since = self.clock()

    def act(self, action: Action) -> None:
        log.info("button: %s", action.value)
        if action is Action.identify:
            self.identify_until = self.clock() + self.config.probe.identify_s
            log.info("identify: %s; %s", self.identity(), self.status())
        elif action in actions.PRIVILEGED:
            actions.request(action, self.paths.requests)

    # --- the loop -------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        if now >= self.next_resync:
            self.next_resync = now + RESYNC_S
            self.read_links()
        if self.down_since is not None and now - self.down_since >= self.config.probe.link_down_debounce_s:
            self.down_since = None
            self.facts = dataclasses.replace(self.facts, link_up=False)
        self.facts = dataclasses.replace(
            self.facts,
            firstboot=facts.firstboot_state(self.paths.firstboot),
            updating=self.paths.updating.exists(),
            has_ip=self.facts.link_up and facts.has_address(self.config.probe.interfaces),
            clock_synced=facts.clock_synced(self.paths.synchronized),
            identify=now < self.identify_until)
        for checker in self.checkers:
            checker.start_if_due(now)
        self.show()
        if now >= self.next_metrics:
            self.next_metrics = now + METRICS_S
            self.write_metrics()

    def write_metrics(self) -> None:
        """For the node exporter's textfile collector (metrics.py); a failure is logged once
        and never stops the LED."""
        text = metrics.exposition(self.shown, self.facts.firstboot, self.peers, self.hubs,
                                  self.facts.mac_conflict,
                                  metrics.installed_versions(self.paths.dpkg_status),
                                  metrics.last_upgrade(self.paths.upgrade))
        try:
            metrics.write(text, self.paths.metrics_dir)
        except OSError as exc:
            if not self.metrics_failed:
                log.warning("<4>metrics: cannot write %s: %s", self.paths.metrics_dir, exc)
            self.metrics_failed = True

    def show(self) -> None:
        hold = self.classifier.holding()
        shown = hold.value if hold in (Hold.restart_vpn, Hold.reboot) else derive_state(self.facts).value
        if shown != self.shown:
            log.info("state: %s (%s)", shown, self.status())
            self.shown = shown
        # the VPN's changes too: they can leave the LED as it was (no-internet, say), and the
        # journal is where an admin (and the VM test) sees when the windows met
        if self.vpn_words() != self.vpn_logged:
            self.vpn_logged = self.vpn_words()
            log.info("vpn: %s", self.vpn_logged)
        self.player.play(shown)
        notify(f"STATUS={self.status()}")

    @property
    def state(self) -> State:
        return derive_state(self.facts)

    def status(self) -> str:
        f = self.facts
        return (f"{self.state.value}: link {'up' if f.link_up else 'down'}, "
                f"address {'yes' if f.has_ip else 'no'}, internet {f.internet.value}, "
                f"clock {'synced' if f.clock_synced else 'not synced'}, "
                f"vpn {self.vpn_words()}, "
                f"led {self.indicator.name}"
                + (f", another station uses {self.config.probe.tap}'s MAC" if f.mac_conflict else ""))

    def vpn_words(self) -> str:
        f = self.facts
        if not f.vpn_configured:
            return "not configured"
        return "up" if f.vpn_up else "hub only" if f.vpn_hub else "down"

    def wait_time(self) -> float:
        """At most a second, less when a link loss is due to be shown sooner."""
        if self.down_since is None:
            return 1.0
        due = self.down_since + self.config.probe.link_down_debounce_s - self.clock()
        return min(1.0, max(0.01, due))

    def identity(self) -> str:
        try:
            data = json.loads(self.paths.identity.read_text())
            return f"{data['hostname']} MAC {data['base_mac']} ULA {data['ula']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "identity not yet derived"

    def healthy(self) -> bool:
        return all(worker.alive for worker in self.workers)

    def run(self, stop: threading.Event) -> None:
        notify("READY=1")
        while not stop.is_set():
            try:
                self.handle(self.events.get(timeout=self.wait_time()))
                while True:  # drain what else arrived
                    self.handle(self.events.get_nowait())
            except queue.Empty:
                pass
            self.tick()
            if self.healthy():
                notify("WATCHDOG=1")
        notify("STOPPING=1")
        self.player.stop()


def link_event(agent: Agent) -> Callable[[str], None]:
    watched = set(agent.config.probe.interfaces)
    return lambda name: agent.post("link", name) if name in watched or name == RESYNC else None
