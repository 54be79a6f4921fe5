# SPDX-License-Identifier: MIT
"""Reading the facts behind the state: firstboot, links, addresses, Internet, clock, VPN.

Every reader takes its roots as arguments, so tests point them at fixture trees."""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from . import vpnprobe
from .linkwatch import read_operstate
from .state import Internet

SIOCGIFADDR = 0x8915
SYNCHRONIZED = Path("/run/systemd/timesync/synchronized")  # timesyncd creates it when synced
FIRSTBOOT_STATUS = Path("/run/ewindow/firstboot.json")
UPDATING = Path("/run/ewindow/updating")  # exists while ewindow-upgrade runs (updates/upgrade.py)


def firstboot_state(path: Path = FIRSTBOOT_STATUS) -> str:
    try:
        return str(json.loads(path.read_text()).get("state", "none"))
    except (OSError, ValueError, AttributeError):
        return "none"


def any_link_up(interfaces: Sequence[str], sys_root: Path = Path("/sys")) -> bool:
    return any(read_operstate(name, sys_root) for name in interfaces)


def ipv4_address(name: str) -> str | None:
    """The interface's IPv4 address (SIOCGIFADDR), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(raw[20:24])


def global_ipv6(name: str, if_inet6: Path = Path("/proc/net/if_inet6")) -> bool:
    """A global-scope, non-tentative IPv6 address on the interface (router advertisement)."""
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # address, index, prefix length, scope (00 = global), flags (0x40 = tentative), name
        if len(fields) == 6 and fields[5] == name and fields[3] == "00" and not int(fields[4], 16) & 0x40:
            return True
    return False


def has_address(interfaces: Sequence[str]) -> bool:
    return any(ipv4_address(name) or global_ipv6(name) for name in interfaces)


def internet(url: str, expect: str, timeout: float = 5.0) -> Internet:
    """Online when the check URL answers with the expected text; captive when something else
    answers (a portal's page or redirect); offline when nothing does."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed http URL
            body = response.read(4096).decode("utf-8", "replace")
            return Internet.online if expect in body and response.geturl() == url else Internet.captive
    except urllib.error.HTTPError:
        return Internet.captive
    except (OSError, ValueError):
        return Internet.offline


def clock_synced(path: Path = SYNCHRONIZED) -> bool:
    return path.exists()


LAYER2 = ("tinc", "peervpn")  # the backends on tap0


def active_backends(active_file: Path, baked_in: Sequence[str]) -> tuple[str, ...]:
    """The backends this card set up (firstboot's active.json), of those in the image. Before
    firstboot ever wrote it (an image older than the file): all of them."""
    try:
        listed = json.loads(active_file.read_text()).get("backends", [])
    except FileNotFoundError:
        return tuple(baked_in)
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(b for b in baked_in if b in listed)


def vpn_statuses(backends: Sequence[str], targets: Sequence[str], state_dir: Path = Path("/run/ewindow/vpn"),
                 tap: str = "tap0") -> list[vpnprobe.VpnStatus]:
    """Each backend's own account: its peer count and the targets that answered."""
    return [vpnprobe.probe(b, targets, state_dir=state_dir, tap=tap) for b in backends]


def vpn_up(statuses: Sequence[vpnprobe.VpnStatus], targets: Sequence[str], tap: str = "tap0",
           sys_root: Path = Path("/sys")) -> bool:
    """Up when a backend counts peers or a target answers; on tap0 without configured
    targets, when another window answers ``ping ff02::1%tap0`` (the original's check)."""
    if any(status.up for status in statuses):
        return True
    layer2 = any(s.backend in LAYER2 for s in statuses) and (sys_root / "class/net" / tap).exists()
    return not targets and layer2 and bool(vpnprobe.responders(tap))
