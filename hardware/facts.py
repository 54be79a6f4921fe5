# SPDX-License-Identifier: MIT
"""Reading the facts behind the state: firstboot, links, addresses, Internet, clock, VPN.

Every reader takes its roots as arguments, so tests point them at fixture trees."""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from firstboot import checks

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


# How much of the check's answer is read: the status line, the headers and the expected text.
ANSWER_LIMIT = 4096


def internet(url: str, expect: str, timeout: float = 5.0) -> Internet:
    """Online when the check URL answers 200 with the expected text; captive when something
    else answers (a portal's page or redirect, an error); offline when nothing does.

    An http URL (the default, like NetworkManager's check) is asked with one HTTP/1.0 GET on
    a plain socket: urllib and http.client import ssl, whose OpenSSL libraries took ~5 MiB
    of the agent's resident memory on a Pi 3 for a URL that needs none. Redirects are not
    followed: a redirect is what a captive portal answers. https URLs go through urllib."""
    if url.startswith("https:"):
        return _internet_https(url, expect, timeout)
    try:
        status, body = http_get(url, timeout)
    except (OSError, ValueError):
        return Internet.offline
    return Internet.online if status == 200 and expect in body else Internet.captive


def http_get(url: str, timeout: float) -> tuple[int, str]:
    """(status, the start of the body) of ``GET url`` over HTTP/1.0 (no chunked answers);
    ValueError when the answer is not HTTP."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http URL: {url}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\nUser-Agent: ewindow-agent\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n")
    answer = b""
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request.encode("ascii"))
        while len(answer) < ANSWER_LIMIT:
            chunk = sock.recv(ANSWER_LIMIT - len(answer))
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise ValueError("the answer is not HTTP")
    return int(status_line[1]), body.decode("utf-8", "replace")


def _internet_https(url: str, expect: str, timeout: float) -> Internet:
    import urllib.error  # noqa: PLC0415 - only for an https check URL (see internet())
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a checked https URL
            body = response.read(ANSWER_LIMIT).decode("utf-8", "replace")
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


def card_hubs(active_file: Path) -> dict[str, tuple[str, ...]]:
    """What the card says the hubs are (firstboot's active.json ``hubs``): cjdns peers' public
    keys (``cjdns``), tinc hubs' node names (``tinc``), the hubs' VPN addresses (``addresses``)."""
    try:
        hubs = json.loads(active_file.read_text()).get("hubs", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(hubs, dict):
        return {}
    found = {str(k): tuple(str(x) for x in v) for k, v in hubs.items() if isinstance(v, list)}
    # the addresses go to ping's argv: only what the one address check accepts (firstboot
    # wrote them checked; a hand-edited file may not be)
    found["addresses"] = tuple(a for a in found.get("addresses", ()) if _is_address(a))
    return found


def _is_address(value: str) -> bool:
    try:
        checks.ip_address(value)
    except checks.InvalidValue:
        return False
    return True


def vpn_statuses(backends: Sequence[str], targets: Sequence[str], state_dir: Path = Path("/run/ewindow/vpn"),
                 tap: str = "tap0", *, hubs: Sequence[str] = (),
                 card: Mapping[str, Sequence[str]] | None = None,
                 activity: vpnprobe.PeerActivity | None = None) -> list[vpnprobe.VpnStatus]:
    """Each backend's own account: the windows and hubs it reaches and the targets that answered."""
    card = card or {}
    return [vpnprobe.probe(b, targets, hubs=hubs, hub_keys=card.get(b, ()), activity=activity,
                           state_dir=state_dir, tap=tap) for b in backends]


def vpn_up(statuses: Sequence[vpnprobe.VpnStatus], targets: Sequence[str], tap: str = "tap0",
           sys_root: Path = Path("/sys"), hubs: Sequence[str] = ()) -> bool:
    """Up when a backend reaches another window or a target answers; on tap0 without configured
    targets, when another window (not a hub) answers ``ping ff02::1%tap0`` (the original's check)."""
    if any(status.up for status in statuses):
        return True
    layer2 = any(s.backend in LAYER2 for s in statuses) and (sys_root / "class/net" / tap).exists()
    return not targets and layer2 and bool(vpnprobe.split_hubs(vpnprobe.responders(tap), hubs)[0])
