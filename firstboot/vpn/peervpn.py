# SPDX-License-Identifier: MIT
"""PeerVPN 0.044: the original EWindow's layer-2 VPN (pre-shared key, tap0).

No keys of its own (a new RSA node key at every start); membership is knowing the PSK. The
config attaches to the persistent tap0 firstboot made (MAC set before PeerVPN opens it) and
sets no ifconfig4/6: networkd owns the addresses. Its parser ends a value at '#' or ';' and
a line at whitespace, and an unknown keyword is fatal, so the PSK is checked before it is
written.
"""

from __future__ import annotations

import re

from . import VpnNode, VpnSettingsError

CONF = "etc/peervpn/ewindow.conf"
PEERS_LINE = re.compile(r"^\[(\d+)\] (\d+) peers connected\.$")


def check_psk(psk: str) -> None:
    if not psk:
        raise VpnSettingsError("vpn.psk: PeerVPN needs a pre-shared key (build.py network init)")
    if len(psk) > 512 or any(c in psk for c in "#; \t\r\n"):
        raise VpnSettingsError("vpn.psk: PeerVPN's parser cuts values at '#', ';' and spaces, and "
                               "takes at most 512 characters")


def conf(node: VpnNode) -> str:
    settings = node.settings
    check_psk(settings.psk)
    lines = ["# Written by ewindow-firstboot from the deployment settings; do not edit.",
             f"networkname {settings.network_name}", f"psk {settings.psk}", "enabletunneling yes",
             f"interface {node.tap}", f"port {settings.peervpn_port}", "enableipv4 yes", "enableipv6 yes"]
    peers = " ".join(settings.peervpn_initpeers)
    if peers:
        lines.append(f"initpeers {peers}")
    if settings.role == "hub":
        lines.append("enablerelay yes")  # peers that cannot reach each other relay through hubs
    return "\n".join(lines) + "\n"


def peers_from_log(line: str) -> int | None:
    """The peer count of a ``[uptime] N peers connected.`` line (PeerVPN prints it on change)."""
    found = PEERS_LINE.match(line.strip())
    return int(found.group(2)) if found else None
