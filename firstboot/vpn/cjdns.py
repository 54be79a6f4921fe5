# SPDX-License-Identifier: MIT
"""cjdns: keys and config made on the device with ``cjdroute --genconf``, then closed.

Changes to the generated config: the public DNS seeds are removed (they auto-peer with the
public network), UDP ``connectTo`` peers come from the site, an ETHInterface beacon peers
on chosen LAN interfaces, and the Internet-gateway model: a gateway pins its clients'
public keys in ``ipTunnel.allowedConnections`` with their addresses, a client names its
gateway in ``ipTunnel.outgoingConnections``. A lost /etc/cjdroute.conf is never regenerated
(that would be a new address); firstboot fails loudly instead.
"""

from __future__ import annotations

import copy
from typing import Any

from . import VpnNode

CONF = "etc/cjdroute.conf"
# the site config's client entries → cjdroute.conf's allowedConnections keys
CLIENT_KEYS = {"public_key": "publicKey", "ip4_address": "ip4Address", "ip4_prefix": "ip4Prefix",
               "ip6_address": "ip6Address", "ip6_prefix": "ip6Prefix"}


def genconf_argv() -> list[str]:
    return ["cjdroute", "--genconf"]


def cleanconf_argv() -> list[str]:
    return ["cjdroute", "--cleanconf"]  # reads the commented config on stdin, prints JSON


def allowed_connection(client: dict[str, Any]) -> dict[str, Any]:
    """A pinned client of a gateway; a prefix only counts with its address."""
    entry = {}
    for key, value in client.items():
        family = key[:3]
        has_address = family not in ("ip4", "ip6") or bool(client.get(f"{family}_address"))
        if key in CLIENT_KEYS and value != "" and has_address:
            entry[CLIENT_KEYS[key]] = value
    return entry


def configure(base: dict[str, Any], node: VpnNode) -> dict[str, Any]:
    conf = copy.deepcopy(base)
    settings = node.settings
    conf.setdefault("router", {}).pop("dnsSeeds", None)
    udp = conf.setdefault("interfaces", {}).setdefault("UDPInterface", [{}])
    v4 = {p.address: {"password": p.password, "publicKey": p.public_key, "peerName": p.name}
          for p in settings.cjdns_peers if not p.address.startswith("[")}
    v6 = {p.address: {"password": p.password, "publicKey": p.public_key, "peerName": p.name}
          for p in settings.cjdns_peers if p.address.startswith("[")}
    udp[0]["connectTo"] = v4
    if len(udp) > 1:
        udp[1]["connectTo"] = v6
    conf["interfaces"].pop("_disabled_ETHInterface", None)
    conf["interfaces"]["ETHInterface"] = [{"bind": name, "beacon": 2, "connectTo": {}}
                                          for name in settings.cjdns_beacon_interfaces]
    tunnel: dict[str, Any] = {"allowedConnections": [], "outgoingConnections": []}
    if settings.role == "hub":
        tunnel["allowedConnections"] = [allowed_connection(c) for c in settings.cjdns_gateway_clients]
    elif settings.cjdns_gateway_key:
        tunnel["outgoingConnections"] = [settings.cjdns_gateway_key]
    conf["ipTunnel"] = tunnel
    return conf
