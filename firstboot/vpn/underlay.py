# SPDX-License-Identifier: MIT
"""A cjdns gateway client's route to its peers outside cjdns' TUN device.

A client whose gateway hands it a default route (``ip4Prefix``/``ip6Prefix`` 0) gets
0.0.0.0/1 and 128.0.0.0/1 (::/1, 8000::/1) into the TUN. cjdroute excepts its UDP peers from
those routes (client/Configurator.c: ``RouteGen_addException``), but drops an exception that
lies in one of its "local prefixes" (10/8, 172.16/12, 192.168/16, 127/8, fd00::/8, fe80::/10;
tunnel/RouteGen.c ``setupDefaultLocalPrefixes``), which it takes to be on-link. A gateway at
a private address behind a router (10.93.2.2 via the LAN's router) is then routed into the
tunnel it carries: the tunnel dies while peerStats still says ESTABLISHED.

``python3 -m firstboot.vpn.underlay`` (ewindow-cjdns-underlay.service, beside cjdroute) keeps
a host route for every such peer via the next hop the main table has for it outside any TUN
device, and follows the underlay (``ip monitor route``): a new DHCP router moves the pin, a
peer that became on-link or unreachable loses it. On-link and public peers need no pin and
get none. Firstboot writes the peers' addresses to ``PEERS_FILE`` for a gateway client only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import select
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import checks

log = logging.getLogger("ewindow-cjdns-underlay")
PEERS_FILE = "etc/ewindow/cjdns-underlay"  # one peer address a line (firstboot.vpn.apply)
PROTO = "222"  # the routing protocol number that marks this watcher's pins (rt_protos: unassigned)
ARPHRD_NONE = 65534  # /sys/class/net/*/type of a TUN device (no link layer)
RECHECK_S = 30.0  # whatever ip monitor said, look again this often
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# tunnel/RouteGen.c setupDefaultLocalPrefixes: an exception inside one of these is dropped
CJDNS_LOCAL_PREFIXES = tuple(ipaddress.ip_network(p) for p in (
    "fe80::/10", "fd00::/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"))


@dataclass(frozen=True)
class Hop:
    gateway: str
    dev: str


def peer_addresses(text: str, source: str) -> tuple[Address, ...]:
    """The peers file: one IP address a line. Raises checks.InvalidValue naming the line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                found.append(ipaddress.ip_address(checks.ip_address(line.strip())))
            except checks.InvalidValue as exc:
                raise checks.InvalidValue(f"{source}:{number}: {exc}") from None
    return tuple(found)


def needs_pin(address: Address) -> bool:
    """cjdroute drops its own route exception for this address (see the module's doc)."""
    return any(address.version == net.version and address in net for net in CJDNS_LOCAL_PREFIXES)


def next_hop(address: Address, routes: Iterable[dict[str, object]], tun_devices: set[str]) -> Hop | None:
    """The router the main table reaches ``address`` through outside a TUN device, by longest
    prefix then lowest metric; None when it is on-link or unreachable. ``routes`` as
    ``ip -j route show table main`` prints them; this watcher's own pins do not count."""
    best: tuple[int, int, dict[str, object]] | None = None
    for route in routes:
        dst, dev = str(route.get("dst", "")), str(route.get("dev", ""))
        mine = str(route.get("protocol", "")) == PROTO
        if dev in tun_devices or mine or route.get("type") not in (None, "unicast"):
            continue
        try:
            network = ipaddress.ip_network("::/0" if address.version == 6 else "0.0.0.0/0") \
                if dst == "default" else ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if network.version != address.version or address not in network:
            continue
        metric = route.get("metric", 0)
        rank = (network.prefixlen, -metric if isinstance(metric, int) else 0)
        if best is None or rank > best[:2]:
            best = (*rank, route)
    if best is None or not best[2].get("gateway"):
        return None
    return Hop(str(best[2]["gateway"]), str(best[2]["dev"]))


def host_route(address: Address) -> str:
    return f"{address}/{address.max_prefixlen}"


def routes_argv(version: int) -> list[str]:
    return ["ip", "-j", f"-{version}", "route", "show", "table", "main"]


def pin_argv(address: Address, hop: Hop) -> list[str]:
    return ["ip", f"-{address.version}", "route", "replace", host_route(address), "via", hop.gateway,
            "dev", hop.dev, "proto", PROTO]


def unpin_argv(address: Address) -> list[str]:
    return ["ip", f"-{address.version}", "route", "del", host_route(address), "proto", PROTO]


def flush_argv(version: int) -> list[str]:
    """Pins an earlier run left (a crash, a restart): each run starts from none."""
    return ["ip", f"-{version}", "route", "flush", "proto", PROTO]


def run(argv: list[str]) -> str:
    """The one place the watcher runs a program: logged, a failure logged and survived (the
    next change or recheck tries again)."""
    log.info("+ %s", " ".join(argv))
    result = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        log.warning("%s failed (%d): %s", " ".join(argv), result.returncode, result.stderr.strip()[-300:])
    return result.stdout


def tun_devices(sys_net: Path = Path("/sys/class/net")) -> set[str]:
    found = set()
    for entry in sys_net.iterdir() if sys_net.exists() else []:
        try:
            if int((entry / "type").read_text()) == ARPHRD_NONE:
                found.add(entry.name)
        except (OSError, ValueError):
            continue
    return found


class Pinner:
    def __init__(self, peers: Sequence[Address]) -> None:
        self.peers = [p for p in peers if needs_pin(p)]
        self.pinned: dict[Address, Hop] = {}

    def reconcile(self) -> None:
        tuns = tun_devices()
        tables: dict[int, list[dict[str, object]]] = {}
        for peer in self.peers:
            if peer.version not in tables:
                try:
                    tables[peer.version] = json.loads(run(routes_argv(peer.version)) or "[]")
                except ValueError:
                    tables[peer.version] = []
            hop = next_hop(peer, tables[peer.version], tuns)
            if hop == self.pinned.get(peer):
                continue
            if hop is None:
                run(unpin_argv(peer))
                self.pinned.pop(peer, None)
                log.info("%s: no pin (on-link or unreachable)", peer)
            else:
                run(pin_argv(peer, hop))
                self.pinned[peer] = hop
                log.info("%s: pinned via %s dev %s", peer, hop.gateway, hop.dev)


def watch(pinner: Pinner) -> None:
    """Reconcile now, then at every route change ``ip monitor`` reports, and every RECHECK_S."""
    for version in (4, 6):
        run(flush_argv(version))
    monitor_argv = ["ip", "monitor", "route"]
    with subprocess.Popen(monitor_argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as monitor:
        assert monitor.stdout is not None
        events = monitor.stdout.fileno()
        while True:
            pinner.reconcile()
            wait = RECHECK_S
            while select.select([events], [], [], wait)[0]:  # a burst of changes: one reconcile
                if not os.read(events, 65536):
                    raise SystemExit("ip monitor route ended")
                wait = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ewindow-cjdns-underlay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=Path("/") / PEERS_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        peers = peer_addresses(args.peers.read_text(), str(args.peers))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.peers}: cannot read: {exc}", file=sys.stderr)
        return 2
    except checks.InvalidValue as exc:
        print(str(exc), file=sys.stderr)
        return 2
    pinner = Pinner(peers)
    if not pinner.peers:
        log.info("no peer needs a pin: none is at a private address")
        return 0
    watch(pinner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
