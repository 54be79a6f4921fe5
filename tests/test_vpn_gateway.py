# SPDX-License-Identifier: MIT
"""cjdns' Internet gateway wherever it is: on the client's LAN, behind the LAN's router at a
private address, or behind it at a public one (issue 21).

The client's LAN has a router (its default route, as DHCP would give it); the gateway hands
the client a default route (ip4Prefix 0), so cjdroute routes 0.0.0.0/1 and 128.0.0.0/1 into
its TUN. The route watcher firstboot sets up for a gateway client
(firstboot/vpn/underlay.py) runs as the unit would, and the client must reach the "internet"
behind the gateway, and keep reaching it, through the real cjdroute.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firstboot.identity import derive
from firstboot.vpn import CjdnsPeer, VpnSettings
from firstboot.vpn.underlay import PEERS_FILE, PROTO

from .conftest import requires_root
from .test_vpn_mesh import REPO, Node, configure, ipv4_on, sh, start_cjdroute, veth, wait_for, wait_for_tun

pytestmark = [pytest.mark.slow, requires_root]
INTERNET = "198.51.100.2"  # behind the gateway, reachable only through it


@dataclass(frozen=True)
class Placement:
    name: str
    gateway: str  # the gateway's underlay address
    pinned: bool  # the watcher must keep a host route to it


PLACEMENTS = (
    Placement("on-link", "10.93.1.3", pinned=False),  # the connected /24 beats cjdns' /1 routes
    Placement("routed-private", "10.93.2.2", pinned=True),  # cjdroute drops its exception
    Placement("public", "203.0.113.2", pinned=False),  # cjdroute's own exception holds
)


@dataclass
class Site:
    client: Node
    router: Node
    gateway: Node
    inet: Node


@pytest.fixture(params=PLACEMENTS, ids=lambda p: p.name)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Site, Placement]]:
    placement: Placement = request.param
    tag = f"ewg{os.getpid() % 10000}"
    nodes = {name: Node(name, f"{tag}-{name}", tmp_path / name, derive("", mac))
             for name, mac in (("a", "b8:27:eb:00:00:0a"), ("r", "b8:27:eb:00:00:0e"),
                               ("hub", "b8:27:eb:00:00:01"), ("inet", "b8:27:eb:00:00:0f"))}
    switch = f"{tag}-sw"
    try:
        for node in (*nodes.values(), None):
            netns = node.netns if node else switch
            sh("ip", "netns", "add", netns)
            sh("ip", "-n", netns, "link", "set", "lo", "up")
            if node:
                (node.root / "run").mkdir(parents=True)
        a, r, hub, inet = nodes["a"], nodes["r"], nodes["hub"], nodes["inet"]
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        lan = [(a, "10.93.1.2/24"), (r, "10.93.1.1/24")]
        if placement.name == "on-link":
            lan.append((hub, f"{placement.gateway}/24"))
        for index, (node, address) in enumerate(lan):
            veth(f"{tag}v{index}", switch, "eth0", node.netns)
            sh("ip", "-n", switch, "link", "set", f"{tag}v{index}", "master", "br0", "up")
            sh("ip", "-n", node.netns, "addr", "add", address, "dev", "eth0")
            sh("ip", "-n", node.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", a.netns, "route", "add", "default", "via", "10.93.1.1")
        sh("ip", "netns", "exec", r.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if placement.name != "on-link":  # the gateway's own segment behind the router
            far = placement.gateway.rsplit(".", 1)[0]
            veth("eth1", r.netns, "eth0", hub.netns)
            sh("ip", "-n", r.netns, "addr", "add", f"{far}.1/24", "dev", "eth1")
            sh("ip", "-n", r.netns, "link", "set", "eth1", "up")
            sh("ip", "-n", hub.netns, "addr", "add", f"{placement.gateway}/24", "dev", "eth0")
            sh("ip", "-n", hub.netns, "link", "set", "eth0", "up")
            sh("ip", "-n", hub.netns, "route", "add", "default", "via", f"{far}.1")
        veth("inet0", hub.netns, "eth0", inet.netns)
        for node, dev, address in ((hub, "inet0", "198.51.100.1/24"), (inet, "eth0", f"{INTERNET}/24")):
            sh("ip", "-n", node.netns, "addr", "add", address, "dev", dev)
            sh("ip", "-n", node.netns, "link", "set", dev, "up")
        yield Site(a, r, hub, inet), placement
    finally:
        for node in nodes.values():
            node.stop()
        for netns in (*(n.netns for n in nodes.values()), switch):
            sh("ip", "netns", "del", netns, check=False)


def gateway_peer(gateway: Node, address: str, public: dict[str, str]) -> CjdnsPeer:
    conf = json.loads((gateway.root / "etc/cjdroute.conf").read_text())
    port = conf["interfaces"]["UDPInterface"][0]["bind"].rsplit(":", 1)[1]
    password = conf["authorizedPasswords"][0]["password"]
    return CjdnsPeer(f"{address}:{port}", public["cjdns_public_key"], password, "gw")


def serve_as_gateway(gateway: Node) -> None:
    """The gateway's side as cjdns' doc/tunnel.md says: TUN addresses, forwarding, NAT."""
    tun = wait_for_tun(gateway)
    gateway.exec("ip", "addr", "add", "10.66.0.1/24", "dev", tun)
    gateway.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    gateway.exec("nft", "add table ip nat; "
                 "add chain ip nat post { type nat hook postrouting priority 100; }; "
                 "add rule ip nat post oifname inet0 masquerade")


def reaches(node: Node, address: str) -> bool:
    return node.exec("ping", "-n", "-c", "1", "-W", "1", address, check=False).returncode == 0


def route_to(node: Node, address: str) -> dict[str, str]:
    routes: list[dict[str, str]] = json.loads(node.exec("ip", "-j", "route", "get", address).stdout)
    return routes[0]


@pytest.mark.usefixtures("daemons_on_path")
def test_cjdns_gateway_client_keeps_its_gateway_wherever_it_is(site: tuple[Site, Placement]) -> None:
    sites, placement = site
    a, gw = sites.client, sites.gateway
    gw_public = configure(gw, VpnSettings(backends=("cjdns",), role="hub"))
    client = VpnSettings(backends=("cjdns",), cjdns_peers=(gateway_peer(gw, placement.gateway, gw_public),),
                         cjdns_gateway_key=gw_public["cjdns_public_key"])
    a_public = configure(a, client)
    # firstboot wrote the watcher's peers file: the gateway's underlay address
    assert (a.root / PEERS_FILE).read_text() == f"{placement.gateway}\n"
    pinned = {"public_key": a_public["cjdns_public_key"], "ip4_address": "10.66.0.4", "ip4_prefix": 0}
    configure(gw, VpnSettings(backends=("cjdns",), role="hub", cjdns_gateway_clients=(pinned,)))
    a.start(["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "firstboot.vpn.underlay",
             "--peers", str(a.root / PEERS_FILE)])
    watcher = a.process
    for node in (gw, a):
        start_cjdroute(node)
    serve_as_gateway(gw)
    a_tun = wait_for_tun(a)
    wait_for(lambda: "10.66.0.4" in ipv4_on(a, a_tun), 60, "a gets its address from the gateway")
    # the gateway's default route is in: half the address space each way into the TUN
    wait_for(lambda: route_to(a, "8.8.8.8").get("dev") == a_tun, 10,
             "cjdroute routes 0.0.0.0/1 into its TUN")
    reached = wait_for(lambda: reaches(a, INTERNET), 30, f"internet via a gateway {placement.name}")
    print(f"cjdns gateway {placement.name}: internet reached {reached:.1f} s after the address")
    to_gateway = route_to(a, placement.gateway)
    assert to_gateway["dev"] == "eth0", to_gateway  # the underlay, never the tunnel it carries
    pins = json.loads(a.exec("ip", "-j", "-4", "route", "show", "proto", PROTO).stdout or "[]")
    assert [p["dst"] for p in pins] == ([placement.gateway] if placement.pinned else [])
    if placement.pinned:
        assert pins[0]["gateway"] == "10.93.1.1"
    else:  # nothing to keep: the watcher says so and ends, or watches an on-link peer unpinned
        assert watcher is not None and watcher.poll() in (None, 0)
    # the tunnel stays up: cjdroute's keepalives to the gateway go over the underlay too
    time.sleep(5)
    assert reaches(a, INTERNET)
