# SPDX-License-Identifier: MIT
"""tinc 1.0 in switch mode: a layer-2 mesh on the persistent tap0, like PeerVPN.

Windows connect to the hubs (``ConnectTo``); a hub needs every window's ``hosts/`` file (the
public key a window publishes in ewindow/identity.json; ``build.py hosts --tinc-hosts``
writes them), a window needs the hubs' files, which come with the settings. Data between
windows goes directly over UDP when it can, and over the hubs' TCP connections when UDP is
blocked (tinc detects this itself since 1.0.10). ``host-up``/``host-down`` hooks keep one
file per reachable node in a state folder, which the status probe counts.
"""

from __future__ import annotations

import re

from . import VpnNode, tinc_name

KEY_BITS = 3072
PUBLIC_KEY_RE = re.compile(r"-----BEGIN RSA PUBLIC KEY-----.*?-----END RSA PUBLIC KEY-----", re.S)
HEADER = "# Written by ewindow-firstboot from the deployment settings; do not edit.\n"


def net_dir(node: VpnNode) -> str:
    return f"etc/tinc/{node.settings.network_name}"


def tinc_conf(node: VpnNode) -> str:
    lines = [HEADER, f"Name = {tinc_name(node.hostname)}", "Mode = switch", "DeviceType = tap",
             f"Interface = {node.tap}", "AddressFamily = any", f"Port = {node.settings.tinc_port}"]
    if node.settings.role != "hub":
        lines += [f"ConnectTo = {tinc_name(hub.name)}" for hub in node.settings.tinc_hubs]
    return "\n".join(lines) + "\n"


def host_file(addresses: tuple[str, ...], port: int, public_key: str) -> str:
    lines = [HEADER.rstrip("\n")] + [f"Address = {a}" for a in addresses] + [f"Port = {port}", "",
                                                                            public_key.strip()]
    return "\n".join(lines) + "\n"


def public_key_of(text: str) -> str:
    """The RSA public key block of a hosts/ file, or ""."""
    found = PUBLIC_KEY_RE.search(text)
    return found.group(0) if found else ""


def hook_scripts(state_dir: str) -> dict[str, str]:
    """hosts/host-up and host-down: tinc runs them synchronously, so they only touch a file."""
    up = f'#!/bin/sh\nmkdir -p "{state_dir}" && : > "{state_dir}/$NODE"\n'
    down = f'#!/bin/sh\nrm -f "{state_dir}/$NODE"\n'
    return {"host-up": up, "host-down": down}


def files(node: VpnNode, own_public_key: str) -> dict[str, tuple[str, int]]:
    """Path (relative to the tinc net folder) → (content, mode)."""
    own = host_file((), node.settings.tinc_port, own_public_key)
    out = {"tinc.conf": (tinc_conf(node), 0o644), f"hosts/{tinc_name(node.hostname)}": (own, 0o644)}
    for hub in node.settings.tinc_hubs:
        out[f"hosts/{tinc_name(hub.name)}"] = (host_file(hub.addresses, hub.port, hub.public_key), 0o644)
    for name, script in hook_scripts(f"{node.state_dir}/tinc").items():
        out[name] = (script, 0o755)
    return out


def keygen_argv(confbase: str) -> list[str]:
    # tincd -K writes rsa_key.priv (0600) and appends the public key to hosts/<Name>; with
    # stdin not a terminal it asks nothing. Run in a scratch folder, then moved into place.
    return ["tincd", "-c", confbase, f"-K{KEY_BITS}"]
