# SPDX-License-Identifier: MIT
"""Yggdrasil: an encrypted IPv6 mesh (layer 3, its own ygg0 and 200::/7 address).

The config is made on the device from ``yggdrasil -genconf -json`` (new keys; the version
installed decides the format: 0.4.7 on bookworm, 0.5.x on trixie, which cannot peer with
0.4) and then only the site's keys are changed: peers, listeners, the public keys allowed to
peer in, multicast (LAN) peering on chosen interfaces, the interface name. An existing
config keeps its keys.
"""

from __future__ import annotations

import json
from typing import Any

from . import VpnNode

CONF = "etc/yggdrasil/yggdrasil.conf"
IFNAME = "ygg0"


def genconf_argv() -> list[str]:
    return ["yggdrasil", "-genconf", "-json"]


def address_argv(conf_path: str) -> list[str]:
    return ["yggdrasil", "-useconffile", conf_path, "-address"]


def public_key_argv(conf_path: str) -> list[str]:
    return ["yggdrasil", "-useconffile", conf_path, "-publickey"]  # 0.5; 0.4 has PublicKey in the file


def configure(base: dict[str, Any], node: VpnNode) -> dict[str, Any]:
    """``base`` (a generated or existing config) with the site's settings; keys untouched."""
    conf = dict(base)
    settings = node.settings
    conf["Peers"] = list(settings.yggdrasil_peers)
    conf["Listen"] = list(settings.yggdrasil_listen)
    conf["AllowedPublicKeys"] = list(settings.yggdrasil_allowed_public_keys)
    template = (base.get("MulticastInterfaces") or [{"Regex": ".*", "Beacon": True, "Listen": True,
                                                     "Port": 0}])[0]
    conf["MulticastInterfaces"] = [{**template, "Regex": regex} for regex in settings.yggdrasil_multicast]
    conf["IfName"] = IFNAME
    conf["NodeInfo"] = {"name": node.hostname}
    return conf


def render(base: dict[str, Any], node: VpnNode) -> str:
    return json.dumps(configure(base, node), indent=2, sort_keys=True) + "\n"
