# SPDX-License-Identifier: MIT
"""``build.py hosts``: the fleet's names and addresses, for /etc/hosts and a DNS zone.

Inputs are the ``ewindow/identity.json`` files windows write to their boot partition, or an
inventory (YAML: a list of ``{mac: …}`` or ``{serial: …}``, each with an optional
``hostname``), from which the identity is derived the way firstboot derives it.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks
from firstboot.identity import IdentityError, derive, mac_from_serial, normalise_serial

from ..config import IdentityConfig, yamlfile
from ..errors import ConfigError


@dataclass(frozen=True)
class Host:
    hostname: str
    ula: str
    base_mac: str
    source: str  # the file (and entry) it came from
    vpn: tuple[tuple[str, str], ...] = ()  # what the window published about its VPN keys


MAX_IDENTITY_BYTES = 64 << 10  # a window's identity.json is ~1 KiB

# What a window publishes about its VPN (firstboot/vpn/apply.py) and the check of each value:
# a card comes from a partner space, and the tinc key goes into the hubs' configs.
VPN_FIELDS: dict[str, Callable[[str], object]] = {
    "tinc_name": checks.tinc_name,
    "tinc_public_key": checks.rsa_public_key,
    "yggdrasil_public_key": checks.yggdrasil_public_key,
    "yggdrasil_address": checks.ipv6_address,
    "cjdns_public_key": checks.cjdns_public_key,
    "cjdns_address": checks.ipv6_address,
}
IDENTITY_FIELDS = frozenset({"serial", "base_mac", "tap_mac", "ula", "link_local", "hostname",
                             "ssh_host_keys", "vpn"})


def from_identity_file(path: Path, identity: IdentityConfig) -> Host:
    """A window's ``ewindow/identity.json``, every field checked: its addresses must follow
    from its MAC under this deployment's prefix, its VPN keys must be keys."""
    text = yamlfile.read_text(path, max_bytes=MAX_IDENTITY_BYTES)

    def fail(key: str, message: str) -> typing.NoReturn:
        raise ConfigError(str(path), key, message)

    try:
        data = json.loads(text)
    except ValueError as exc:
        fail("", f"not a window's identity.json ({str(exc)[:80]})")
    except RecursionError:
        fail("", "nested too deeply")
    if not isinstance(data, dict):
        fail("(top level)", "expected an object (a window's identity.json)")
    for key in data:
        if key not in IDENTITY_FIELDS:
            fail(checks.shown(key), "unknown key")
    for key in ("hostname", "base_mac", "ula", "tap_mac", "link_local"):
        if not isinstance(data.get(key), str):
            fail(key, "missing" if key not in data else "expected a string")
    serial = data.get("serial", "")
    if not isinstance(serial, str):
        fail("serial", "expected a string")
    try:
        checks.hostname(data["hostname"])
    except checks.InvalidValue as exc:
        fail("hostname", str(exc))
    try:
        derived = derive(serial, data["base_mac"], prefix=identity.prefix)
    except IdentityError as exc:
        fail("base_mac" if "MAC" in str(exc) else "serial", str(exc))
    for key in ("tap_mac", "ula", "link_local"):
        if data[key] != getattr(derived, key):
            fail(key, f"{checks.shown(data[key])} does not follow from base_mac {derived.base_mac} "
                 f"and identity.prefix {identity.prefix} (a card of another deployment?)")
    return Host(data["hostname"], derived.ula, derived.base_mac, str(path),
                _published_vpn(data.get("vpn") or {}, fail))


def _published_vpn(vpn: Any, fail: Callable[[str, str], typing.NoReturn]) -> tuple[tuple[str, str], ...]:
    if not isinstance(vpn, dict):
        fail("vpn", "expected an object")
    for key, value in vpn.items():
        rule = VPN_FIELDS.get(key)
        if rule is None:
            fail(f"vpn.{checks.shown(key)}", f"unknown key (known: {', '.join(VPN_FIELDS)})")
        if not isinstance(value, str):
            fail(f"vpn.{key}", "expected a string")
        try:
            rule(value)
        except checks.InvalidValue as exc:
            fail(f"vpn.{key}", str(exc))
    return tuple(sorted(vpn.items()))


INVENTORY_KEYS = ("mac", "serial", "hostname")


def from_inventory(path: Path, identity: IdentityConfig) -> list[Host]:
    entries = yamlfile.load(path) or []
    if not isinstance(entries, list):
        raise ConfigError(str(path), "(top level)", "expected a list of {mac|serial, hostname}")
    hosts = []
    for index, entry in enumerate(entries):
        where = f"[{index}]"
        if not isinstance(entry, dict) or not ({"mac", "serial"} & set(entry)):
            raise ConfigError(str(path), where, "expected a mapping with 'mac' or 'serial'")
        for key, value in entry.items():
            if key not in INVENTORY_KEYS:
                close = difflib.get_close_matches(str(key), INVENTORY_KEYS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(INVENTORY_KEYS)}"
                raise ConfigError(str(path), f"{where}.{checks.shown(key)}", f"unknown key ({hint})")
            if not isinstance(value, str):
                raise ConfigError(str(path), f"{where}.{key}",
                                  f"expected a string, got {checks.shown(value)} (write it in quotes)")
        try:
            if "mac" in entry:
                found = derive(entry.get("serial", ""), entry["mac"], prefix=identity.prefix,
                               hostname_template=identity.hostname_template)
            else:
                serial = normalise_serial(entry["serial"])
                found = derive(serial, mac_from_serial(serial), prefix=identity.prefix,
                               hostname_template=identity.hostname_template)
        except IdentityError as exc:
            raise ConfigError(str(path), where, str(exc)) from None
        hostname = entry.get("hostname") or found.hostname
        try:
            checks.hostname(hostname)
        except checks.InvalidValue as exc:
            raise ConfigError(str(path), f"{where}.hostname", str(exc)) from None
        hosts.append(Host(hostname, found.ula, found.base_mac, f"{path}{where}"))
    return hosts


def collect(paths: list[Path], identity: IdentityConfig) -> list[Host]:
    """All hosts, sorted by name; the same window twice is kept once, a clash is an error."""
    hosts: list[Host] = []
    for path in paths:
        if path.suffix == ".json":
            hosts.append(from_identity_file(path, identity))
        else:
            hosts += from_inventory(path, identity)
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
    """hosts/<name> files for the tinc hubs: every window that published a tinc key. The
    name and key were checked when the card's file was read (tinc_name, rsa_public_key)."""
    from firstboot.vpn.tinc import host_file

    files: dict[str, str] = {}
    owners: dict[str, Host] = {}
    for host in hosts:
        vpn = dict(host.vpn)
        name = vpn.get("tinc_name")
        if name and vpn.get("tinc_public_key"):
            if name in owners:
                raise ConfigError(host.source, "vpn.tinc_name", f"{name} is also the tinc name of "
                                  f"{owners[name].hostname} in {owners[name].source}")
            owners[name] = host
            key = checks.rsa_public_key(vpn["tinc_public_key"])
            files[checks.tinc_name(name)] = host_file((), port, key)
    return files


def write_files(folder: Path, files: dict[str, str]) -> list[Path]:
    """Each file into ``folder`` (created 0755 if missing) under a temporary name, then renamed:
    only plain names (checked above), never a path outside it, never through a link."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise ConfigError("--tinc-hosts", "", f"{folder}: not a folder (tinc reads one file per window "
                          "from its hosts/ folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--tinc-hosts", "", f"{folder}: {exc.strerror or exc}") from None
    written = []
    for name, text in files.items():
        target = folder / checks.tinc_name(name)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        written.append(target)
    return written
