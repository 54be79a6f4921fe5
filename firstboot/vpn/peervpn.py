# SPDX-License-Identifier: MIT
"""PeerVPN 0.044: the original EWindow's layer-2 VPN (pre-shared key, tap0).

No keys of its own (a new RSA node key at every start); membership is knowing the PSK. The
config attaches to the persistent tap0 that ewindow-tap.service made from firstboot's .netdev
(MAC set before PeerVPN opens it) and
sets no ifconfig4/6: networkd owns the addresses. Its parser ends a value at '#' or ';' and
a line at whitespace, and an unknown keyword is fatal, so the PSK is checked before it is
written.
"""

from __future__ import annotations

import re

from ..checks import shown
from . import VpnNode, VpnSettingsError

CONF = "etc/peervpn/ewindow.conf"


# config.ic reads a value into a 512-byte buffer: 511 characters and the terminating NUL. A
# 512-character value is accepted but left unterminated; a longer one is cut silently.
MAX_VALUE = 511


def check_psk(psk: str) -> None:
    """The one check of a PeerVPN PSK: the builder's config, personalise and firstboot."""
    if not psk:
        raise VpnSettingsError("vpn.psk: PeerVPN needs a pre-shared key (build.py network init)")
    if len(psk) > MAX_VALUE or any(c in psk for c in "#;") or any(c.isspace() for c in psk) \
            or not psk.isprintable():
        raise VpnSettingsError(f"vpn.psk: PeerVPN's parser cuts values at '#', ';' and white space, "
                               f"and takes at most {MAX_VALUE} characters")


def check_initpeers(initpeers: tuple[str, ...]) -> None:
    """``HOST PORT`` entries, all on one ``initpeers`` line of at most 511 characters."""
    for index, entry in enumerate(initpeers):
        parts = entry.split(" ")
        if len(parts) != 2 or not re.fullmatch(r"[0-9]{1,5}", parts[1]) or not 0 < int(parts[1]) < 65536 \
                or any(c in entry for c in "#;") or not entry.isprintable():
            raise VpnSettingsError(f"vpn.peervpn.initpeers[{index}]: {shown(entry)} is not 'HOST PORT'")
    if len(" ".join(initpeers)) > MAX_VALUE:
        raise VpnSettingsError(f"vpn.peervpn.initpeers: {len(' '.join(initpeers))} characters on one "
                               f"line; PeerVPN reads at most {MAX_VALUE}")


def active(node: VpnNode) -> bool:
    """Started only with its settings: the PSK, and init peers unless it is the hub."""
    settings = node.settings
    return bool(settings.psk) and bool(settings.peervpn_initpeers or settings.role == "hub")


def conf(node: VpnNode) -> str:
    settings = node.settings
    check_psk(settings.psk)
    check_initpeers(settings.peervpn_initpeers)
    lines = ["# Written by ewindow-firstboot from the deployment settings; do not edit.",
             f"networkname {settings.network_name}", f"psk {settings.psk}", "enabletunneling yes",
             f"interface {node.tap}", "enableipv4 yes", "enableipv6 yes"]
    if settings.role == "hub":
        # The hub listens where the windows' initpeers point. A window takes a new port at each
        # start: PeerVPN's auth manager ignores a new handshake from an address whose earlier
        # handshake is still pending (libp2psec/authmgt.c, up to 30 s), so a window restarted
        # on its old address was locked out of the hub (the restart test measured it).
        lines.append(f"port {settings.peervpn_port}")
    peers = " ".join(settings.peervpn_initpeers)
    if peers:
        lines.append(f"initpeers {peers}")
    if settings.role == "hub":
        lines.append("enablerelay yes")  # peers that cannot reach each other relay through hubs
    return "\n".join(lines) + "\n"

