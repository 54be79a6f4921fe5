# SPDX-License-Identifier: MIT
"""``build.py hosts``: the fleet's names and addresses, for /etc/hosts and a DNS zone.

Inputs are the ``ewindow/identity.json`` files windows write to their boot partition, or an
inventory (YAML: a list of ``{mac: …}`` or ``{serial: …}``, each with an optional
``hostname``), from which the identity is derived the way firstboot derives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from firstboot.identity import IdentityError, derive, mac_from_serial, normalise_serial

from .config import IdentityConfig, is_hostname
from .errors import ConfigError


@dataclass(frozen=True)
class Host:
    hostname: str
    ula: str
    base_mac: str
    source: str  # the file (and entry) it came from
    vpn: tuple[tuple[str, str], ...] = ()  # what the window published about its VPN keys


def from_identity_file(path: Path) -> Host:
    try:
        data = json.loads(path.read_text())
        vpn = tuple(sorted((str(k), str(v)) for k, v in (data.get("vpn") or {}).items()))
        return Host(str(data["hostname"]), str(data["ula"]), str(data["base_mac"]), str(path), vpn)
    except OSError as exc:
        raise ConfigError(str(path), "", exc.strerror or str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), "", f"not a window's identity.json ({exc})") from None


def from_inventory(path: Path, identity: IdentityConfig) -> list[Host]:
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except OSError as exc:
        raise ConfigError(str(path), "", exc.strerror or str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(entries, list):
        raise ConfigError(str(path), "(top level)", "expected a list of {mac|serial, hostname}")
    hosts = []
    for index, entry in enumerate(entries):
        where = f"[{index}]"
        if not isinstance(entry, dict) or not ({"mac", "serial"} & set(entry)):
            raise ConfigError(str(path), where, "expected a mapping with 'mac' or 'serial'")
        try:
            if "mac" in entry:
                found = derive(str(entry.get("serial", "")), str(entry["mac"]), prefix=identity.prefix,
                               hostname_template=identity.hostname_template)
            else:
                serial = normalise_serial(str(entry["serial"]))
                found = derive(serial, mac_from_serial(serial), prefix=identity.prefix,
                               hostname_template=identity.hostname_template)
        except IdentityError as exc:
            raise ConfigError(str(path), where, str(exc)) from None
        hostname = str(entry.get("hostname") or found.hostname)
        if not is_hostname(hostname):
            raise ConfigError(str(path), f"{where}.hostname", f"'{hostname}' is not a valid host name")
        hosts.append(Host(hostname, found.ula, found.base_mac, f"{path}{where}"))
    return hosts


def collect(paths: list[Path], identity: IdentityConfig) -> list[Host]:
    """All hosts, sorted by name; the same window twice is kept once, a clash is an error."""
    hosts: list[Host] = []
    for path in paths:
        hosts += [from_identity_file(path)] if path.suffix == ".json" else from_inventory(path, identity)
    by_name: dict[str, Host] = {}
    by_ula: dict[str, Host] = {}
    for host in hosts:
        for index, key in ((by_name, host.hostname), (by_ula, host.ula)):
            other = index.get(key)
            if other and (other.hostname, other.ula) != (host.hostname, host.ula):
                raise ConfigError(host.source, "", f"{key} is also {other.hostname} {other.ula} "
                                  f"in {other.source}")
            index[key] = host
    return sorted(by_name.values(), key=lambda h: h.hostname)


def hosts_lines(hosts: list[Host], domain: str) -> list[str]:
    return [f"{h.ula}\t{h.hostname}.{domain} {h.hostname}" for h in hosts]


def zone_lines(hosts: list[Host], domain: str) -> list[str]:
    return [f"{h.hostname}.{domain}.\tIN\tAAAA\t{h.ula}" for h in hosts]


def tinc_host_files(hosts: list[Host], port: int) -> dict[str, str]:
    """hosts/<name> files for the tinc hubs: every window that published a tinc key."""
    from firstboot.vpn.tinc import host_file

    files = {}
    for host in hosts:
        vpn = dict(host.vpn)
        if vpn.get("tinc_name") and vpn.get("tinc_public_key"):
            files[vpn["tinc_name"]] = host_file((), port, vpn["tinc_public_key"])
    return files
