# SPDX-License-Identifier: MIT
"""cjdns (v21.1, built from source): keys and config made on the device with
``cjdroute --genconf``, then closed and checked by running the real cjdroute in the tests.

Changes to the generated config (client/cjdroute2.c genconf):

- closed: genconf's UDP beacon (``beacon: 2``, ``beaconDevices: ["all"]``) auto-peers with
  any cjdns node on the LAN after ~33 s; it is off (0) unless the site opts in with
  ``udp_beacon``, and the ETHInterface exists only for ``beacon_interfaces``. Later releases'
  public DNS seeds (``router.dnsSeeds``) are removed too;
- UDP ``connectTo`` peers come from the site (IPv4 peers in the v4 block, IPv6 in the v6);
- the Internet-gateway model under ``router.ipTunnel`` (cjdroute reads only that place, see
  cjdns doc/tunnel.md): a gateway pins its clients' keys in ``allowedConnections`` with the
  addresses it gives them, a client names its gateway in ``outgoingConnections``;
- the admin API gets a random per-window password instead of genconf's ``NONE``;
- the core logs to stdout (the journal) and the angel/core pipe is the node's own.

A lost /etc/cjdroute.conf is never regenerated (that would be a new address); firstboot
fails loudly instead.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from .. import checks
from . import VpnNode

CONF = "etc/cjdroute.conf"
ADMIN_BIND = "127.0.0.1:11234"  # the admin API; the status probe asks it for peerStats
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
    router = conf.setdefault("router", {})
    router.pop("dnsSeeds", None)
    conf.pop("ipTunnel", None)  # where this code once wrote it; cjdroute never read it there
    udp = conf.setdefault("interfaces", {}).setdefault("UDPInterface", [{}])
    v4 = {p.address: {"password": p.password, "publicKey": p.public_key, "peerName": p.name}
          for p in settings.cjdns_peers if not p.address.startswith("[")}
    v6 = {p.address: {"password": p.password, "publicKey": p.public_key, "peerName": p.name}
          for p in settings.cjdns_peers if p.address.startswith("[")}
    udp[0]["connectTo"] = v4
    if settings.cjdns_udp_beacon:
        udp[0].update({"beacon": 2, "beaconDevices": ["all"]})
    else:
        udp[0]["beacon"] = 0
        udp[0].pop("beaconDevices", None)
    if len(udp) > 1:
        udp[1]["connectTo"] = v6
    conf["interfaces"].pop("_disabled_ETHInterface", None)
    conf["interfaces"].pop("ETHInterface", None)
    if settings.cjdns_beacon_interfaces:
        conf["interfaces"]["ETHInterface"] = [{"bind": name, "beacon": 2, "connectTo": {}}
                                              for name in settings.cjdns_beacon_interfaces]
    tunnel: dict[str, Any] = {"allowedConnections": [], "outgoingConnections": []}
    if settings.role == "hub":
        tunnel["allowedConnections"] = [allowed_connection(c) for c in settings.cjdns_gateway_clients]
    elif settings.cjdns_gateway_key:
        tunnel["outgoingConnections"] = [settings.cjdns_gateway_key]
    router["ipTunnel"] = tunnel
    admin = conf.setdefault("admin", {"bind": ADMIN_BIND})
    if admin.get("password", "NONE") in ("NONE", ""):
        admin["password"] = secrets.token_hex(16)  # kept on later runs: the file is the state
    conf["logging"] = {"logTo": "stdout"}
    conf["noBackground"] = 1
    conf["pipe"] = f"{node.state_dir}/cjdroute.sock"
    return conf


def underlay_peers(node: VpnNode) -> tuple[str, ...]:
    """A gateway client's peers' underlay addresses, for the route watcher (underlay.py): its
    default route goes into the TUN, and these must stay outside it."""
    if node.settings.role == "hub" or not node.settings.cjdns_gateway_key:
        return ()
    return tuple(dict.fromkeys(checks.host_port(p.address)[0] for p in node.settings.cjdns_peers))


def active(node: VpnNode) -> bool:
    """Started only with something to connect to: peers, a gateway, a LAN beacon, or as the
    hub/gateway the windows connect to."""
    settings = node.settings
    return bool(settings.role == "hub" or settings.cjdns_peers or settings.cjdns_gateway_key
                or settings.cjdns_beacon_interfaces or settings.cjdns_udp_beacon)
