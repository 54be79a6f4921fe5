# SPDX-License-Identifier: MIT
"""The fleet registry for the tools admins already use (README "Watching the fleet"):
Prometheus' file-based service discovery and an Ansible inventory.

Every window is reached over the VPN, never over a partner space's LAN: at its ULA when the
deployment runs a layer-2 backend (PeerVPN, tinc, on tap0), else at the cjdns or Yggdrasil
address it published. Formats:
https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config and
https://docs.ansible.com/ansible/latest/inventory_guide/intro_inventory.html (YAML).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from firstboot.files import METRICS_PORT

from .registry import Host

LAYER2 = ("tinc", "peervpn")
PUBLISHED_ADDRESS = {"cjdns": "cjdns_address", "yggdrasil": "yggdrasil_address"}
# which backend publishes what, so a window is in a backend's group only if it set it up
PUBLISHED_BY = {"tinc": "tinc_name", "cjdns": "cjdns_address", "yggdrasil": "yggdrasil_address"}


def vpn_address(host: Host, backends: Sequence[str]) -> str:
    """Where the fleet reaches ``host``: its ULA over a layer-2 backend, else the address a
    layer-3 backend gave it, else (no VPN known) its ULA."""
    if any(b in LAYER2 for b in backends):
        return host.ula
    published = dict(host.vpn)
    for backend in backends:
        address = published.get(PUBLISHED_ADDRESS.get(backend, ""), "")
        if address:
            return address
    return host.ula


def file_sd(hosts: Sequence[Host], backends: Sequence[str], deployment: str) -> str:
    """A Prometheus file_sd JSON file: one target group per window, its node exporter port on
    its VPN address, labelled with its name."""
    groups = [{"targets": [f"[{vpn_address(h, backends)}]:{METRICS_PORT}"],
               "labels": {"window": h.hostname, "deployment": deployment}} for h in hosts]
    return json.dumps(groups, indent=2) + "\n"


def ansible_inventory(hosts: Sequence[Host], backends: Sequence[str], admin_user: str) -> str:
    """An Ansible YAML inventory: every window in ``ewindow``, and in one group per VPN
    backend it runs; ``ansible_host`` is its VPN address, ``ansible_user`` the admin."""
    host_vars: dict[str, dict[str, Any]] = {}
    for h in hosts:
        published = dict(h.vpn)
        host_vars[h.hostname] = {"ansible_host": vpn_address(h, backends), "ansible_user": admin_user,
                                 "ewindow_ula": h.ula, "ewindow_base_mac": h.base_mac,
                                 **{f"ewindow_{key}": value for key, value in sorted(published.items())
                                    if key.endswith("_address") or key == "tinc_name"}}
    children: dict[str, Any] = {"ewindow": {"hosts": host_vars}}
    for backend in backends:
        field = PUBLISHED_BY.get(backend)
        members = [h.hostname for h in hosts if field is None or dict(h.vpn).get(field)]
        children[backend] = {"hosts": {name: None for name in members}}
    return yaml.safe_dump({"all": {"children": children}}, sort_keys=False, default_flow_style=False)
