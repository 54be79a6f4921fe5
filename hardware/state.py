# SPDX-License-Identifier: MIT
"""What the window shows: facts from the probes → one state, by priority (first true wins)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    identify = "identify"  # the button was pressed: "this one"
    firstboot = "firstboot"  # firstboot is running
    fault = "fault"  # firstboot failed, the agent cannot do its job, or another station uses tap0's MAC
    updating = "updating"  # an unattended upgrade runs (updates/, /run/ewindow/updating)
    no_link = "no-link"  # no cable / no Wi-Fi association
    no_ip = "no-ip"  # link, but no address (DHCP)
    captive = "captive"  # a portal answers instead of the Internet
    no_internet = "no-internet"  # an address, but the Internet does not answer
    clock = "clock"  # the clock is not synchronised (VPN timers, TLS)
    vpn_not_configured = "vpn-not-configured"
    vpn_down = "vpn-down"  # configured, but nothing answers
    vpn_hub = "vpn-hub"  # a hub answers, no other window does
    vpn_up = "vpn-up"  # another window answers


class Internet(enum.StrEnum):
    unknown = "unknown"  # not checked yet
    online = "online"
    captive = "captive"
    offline = "offline"


@dataclass(frozen=True)
class Facts:
    firstboot: str = "done"  # running | done | failed | none (from /run/ewindow/firstboot.json)
    fault: str = ""  # the agent's own trouble (bad config, netlink lost); "" when none
    link_up: bool = False
    has_ip: bool = False
    internet: Internet = Internet.unknown
    clock_synced: bool = False
    vpn_configured: bool = False
    vpn_up: bool = False  # another window (or a target) answers
    vpn_hub: bool = False  # a hub answers
    mac_conflict: bool = False  # another station sends with this window's tap0 MAC
    identify: bool = False
    updating: bool = False


def derive_state(facts: Facts) -> State:
    if facts.identify:
        return State.identify
    if facts.firstboot == "running":
        return State.firstboot
    if facts.firstboot == "failed" or facts.fault or facts.mac_conflict:
        return State.fault
    if facts.updating:
        return State.updating
    if not facts.link_up:
        return State.no_link
    if not facts.has_ip:
        return State.no_ip
    if facts.internet is Internet.captive:
        return State.captive
    if facts.internet is Internet.offline:
        return State.no_internet
    if not facts.clock_synced:
        return State.clock
    if not facts.vpn_configured:
        return State.vpn_not_configured
    if facts.vpn_up:
        return State.vpn_up
    return State.vpn_hub if facts.vpn_hub else State.vpn_down
