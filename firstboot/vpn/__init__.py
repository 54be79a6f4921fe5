# SPDX-License-Identifier: MIT
"""The mesh VPN backends: their settings, and the files and keys each one needs on a window.

Rendering is pure (identity + settings → file contents); key generation runs the backend's
own tool. The same code renders the image's configs at first boot and the configs of the
two-window test in network namespaces. Keys are made on the device, once: a backend whose
key has been made before (``/var/lib/ewindow/vpn/<backend>.pub``) but whose private key is
gone fails loudly instead of silently becoming a new node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import checks
from ..identity import Identity

BACKENDS = ("tinc", "yggdrasil", "peervpn", "cjdns")
KEY_RECORD_DIR = "var/lib/ewindow/vpn"  # <backend>.pub: made once, never again
ACTIVE_FILE = f"{KEY_RECORD_DIR}/active.json"  # the backends this card set up, for the agent


class VpnSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class TincHub:
    name: str
    addresses: tuple[str, ...]
    port: int
    public_key: str  # the hub's hosts/ file key block ("-----BEGIN RSA PUBLIC KEY-----…")


@dataclass(frozen=True)
class CjdnsPeer:
    address: str  # ip:port
    public_key: str
    password: str
    name: str = ""


@dataclass(frozen=True)
class VpnSettings:
    backends: tuple[str, ...] = ()
    role: str = "window"  # window | hub
    network_name: str = "ewindow"
    hub_addresses: tuple[str, ...] = ()  # the hubs' VPN addresses: the LED tells them from windows
    psk: str = ""
    tinc_port: int = 655
    tinc_hubs: tuple[TincHub, ...] = ()
    yggdrasil_peers: tuple[str, ...] = ()
    yggdrasil_listen: tuple[str, ...] = ()
    yggdrasil_allowed_public_keys: tuple[str, ...] = ()
    yggdrasil_multicast: tuple[str, ...] = ()  # interface regexes for LAN peering
    peervpn_port: int = 7777
    peervpn_initpeers: tuple[str, ...] = ()  # "host port"
    cjdns_peers: tuple[CjdnsPeer, ...] = ()
    cjdns_beacon_interfaces: tuple[str, ...] = ()
    cjdns_udp_beacon: bool = False  # LAN auto-peering over UDP: open to any cjdns node there
    cjdns_gateway_key: str = ""  # client role: route through this gateway (IpTunnel)
    cjdns_gateway_clients: tuple[dict[str, Any], ...] = field(default=())  # gateway: pinned clients


@dataclass(frozen=True)
class VpnNode:
    """What a backend renders from: the window's identity and name, and the settings."""

    identity: Identity
    hostname: str
    settings: VpnSettings
    tap: str = "tap0"
    state_dir: str = "/run/ewindow/vpn"  # where hooks leave state for the status probe


def _strings(data: dict[str, Any], key: str, where: str,
             rule: Callable[[str], object] | None = None) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VpnSettingsError(f"{where}{key}: expected a list of strings")
    for index, item in enumerate(value):
        _check(f"{where}{key}[{index}]", rule, item)
    return tuple(value)


def _check(key: str, rule: Callable[[Any], object] | None, value: Any) -> None:
    if rule is None:
        return
    try:
        rule(value)
    except checks.InvalidValue as exc:
        raise VpnSettingsError(f"{key}: {exc}") from None


def _text(data: dict[str, Any], key: str, where: str, rule: Callable[[str], object] | None = None,
          *, secret: bool = False) -> str:
    value = data.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        got = "" if secret else f", got {checks.shown(value)}"
        raise VpnSettingsError(f"{where}{key}: expected a string{got} (write it in quotes)")
    _check(f"{where}{key}", rule, value)
    return value


def _port(data: dict[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    _check(f"{where}{key}", checks.port, value)
    return int(value)


def _bool(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise VpnSettingsError(f"{where}{key}: expected true or false")
    return value


def _section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise VpnSettingsError(f"{where}{key}: expected an object")
    return value


def _entries(data: dict[str, Any], key: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise VpnSettingsError(f"{where}{key}: expected a list")
    found = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise VpnSettingsError(f"{where}{key}[{index}]: expected an object")
        found.append((f"{where}{key}[{index}].", entry))
    return found


def _tinc_hub(hub: dict[str, Any], at: str) -> TincHub:
    if not hub.get("name"):
        raise VpnSettingsError(f"{at}name: missing")
    return TincHub(_text(hub, "name", at, checks.tinc_name), _strings(hub, "addresses", at, checks.host),
                   _port(hub, "port", 655, at), _text(hub, "public_key", at, checks.rsa_public_key))


def _cjdns_peer(peer: dict[str, Any], at: str) -> CjdnsPeer:
    address = _text(peer, "address", at, checks.host_port)
    if not address:
        raise VpnSettingsError(f"{at}address: missing (ip:port)")
    _check(f"{at}address", _ip_host_port, address)
    key = _text(peer, "public_key", at, checks.cjdns_public_key)
    if not key:
        raise VpnSettingsError(f"{at}public_key: missing")
    return CjdnsPeer(address, key, _text(peer, "password", at, checks.printable_secret, secret=True),
                     _text(peer, "name", at, _peer_name))


def _ip_host_port(value: str) -> None:
    """cjdns' UDPInterface connects to IP literals only (no DNS in cjdroute)."""
    checks.ip_address(checks.host_port(value)[0])


def _peer_name(value: str) -> None:
    if len(value) > 64 or not value.isprintable():
        raise checks.InvalidValue(f"{checks.shown(value)}: at most 64 printable characters")


CLIENT_RULES: dict[str, Callable[[Any], object]] = {
    "public_key": checks.cjdns_public_key,
    "ip4_address": lambda v: v == "" or ipaddress.IPv4Address(v),
    "ip6_address": lambda v: v == "" or ipaddress.IPv6Address(v),
    "ip4_prefix": lambda v: _prefix_length(v, 32),
    "ip6_prefix": lambda v: _prefix_length(v, 128),
}


def _prefix_length(value: Any, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise checks.InvalidValue(f"{checks.shown(value)} is not a prefix length (0 to {most})")


def _gateway_client(client: dict[str, Any], at: str) -> dict[str, Any]:
    for key, value in client.items():
        rule = CLIENT_RULES.get(key)
        if rule is None:
            raise VpnSettingsError(f"{at}{checks.shown(key)}: unknown key "
                                   f"(known: {', '.join(CLIENT_RULES)})")
        try:
            rule(value)
        except (ValueError, TypeError):
            raise VpnSettingsError(f"{at}{key}: {checks.shown(value)} is not valid here") from None
    if not client.get("public_key"):
        raise VpnSettingsError(f"{at}public_key: missing")
    return client


def parse_vpn(data: dict[str, Any], where: str = "vpn.") -> VpnSettings:
    """The ``vpn`` section of firstboot.json or deployment.json (the builder's config, as JSON),
    every value checked: the builder runs this same parser on its config."""
    from . import peervpn

    backends = _strings(data, "backends", where)
    for name in backends:
        if name not in BACKENDS:
            raise VpnSettingsError(f"{where}backends: {checks.shown(name)} is not one of "
                                   f"{', '.join(BACKENDS)}")
    role = _text(data, "role", where) or "window"
    if role not in ("window", "hub"):
        raise VpnSettingsError(f"{where}role: {checks.shown(role)} is not one of window, hub")
    psk = _text(data, "psk", where, secret=True)
    if psk:
        peervpn.check_psk(psk)
    tinc, ygg = _section(data, "tinc", where), _section(data, "yggdrasil", where)
    peervpn_section, cjdns = _section(data, "peervpn", where), _section(data, "cjdns", where)
    at_ygg, at_cjdns = f"{where}yggdrasil.", f"{where}cjdns."
    initpeers = _strings(peervpn_section, "initpeers", f"{where}peervpn.")
    peervpn.check_initpeers(initpeers)
    for index, entry in enumerate(initpeers):
        _check(f"{where}peervpn.initpeers[{index}]", checks.host, entry.split()[0])
    return VpnSettings(
        backends=backends,
        role=role,
        network_name=_text(data, "network_name", where, checks.network_name) or "ewindow",
        hub_addresses=_strings(data, "hub_addresses", where, checks.ip_address),
        psk=psk,
        tinc_port=_port(tinc, "port", 655, f"{where}tinc."),
        tinc_hubs=tuple(_tinc_hub(hub, at) for at, hub in _entries(tinc, "hubs", f"{where}tinc.")),
        yggdrasil_peers=_strings(ygg, "peers", at_ygg, checks.yggdrasil_uri),
        yggdrasil_listen=_strings(ygg, "listen", at_ygg, checks.yggdrasil_uri),
        yggdrasil_allowed_public_keys=_strings(ygg, "allowed_public_keys", at_ygg,
                                               checks.yggdrasil_public_key),
        yggdrasil_multicast=_strings(ygg, "multicast_interfaces", at_ygg, checks.interface_regex),
        peervpn_port=_port(peervpn_section, "port", 7777, f"{where}peervpn."),
        peervpn_initpeers=initpeers,
        cjdns_peers=tuple(_cjdns_peer(peer, at) for at, peer in _entries(cjdns, "peers", at_cjdns)),
        cjdns_beacon_interfaces=_strings(cjdns, "beacon_interfaces", at_cjdns, checks.interface_name),
        cjdns_udp_beacon=_bool(cjdns, "udp_beacon", at_cjdns),
        cjdns_gateway_key=_text(cjdns, "gateway_public_key", at_cjdns, checks.cjdns_public_key),
        cjdns_gateway_clients=tuple(_gateway_client(client, at)
                                    for at, client in _entries(cjdns, "clients", at_cjdns)),
    )


def check_complete(settings: VpnSettings, where: str = "vpn.") -> None:
    """What a card must carry for the backends it names to start: refused when the card is
    made (personalise) and again by firstboot, instead of a window that never joins."""
    if "peervpn" in settings.backends and (settings.peervpn_initpeers or settings.role == "hub") \
            and not settings.psk:
        raise VpnSettingsError(f"{where}psk: PeerVPN needs the deployment's pre-shared key "
                               "(secrets_file from build.py network init)")
    if "tinc" in settings.backends:
        for index, hub in enumerate(settings.tinc_hubs):
            if not hub.public_key:
                raise VpnSettingsError(f"{where}tinc.hubs[{index}].public_key: the hub's RSA public key "
                                       "block (from its hosts/ file)")


def check_installed(settings: VpnSettings, image_vpn: dict[str, Any], where: str = "vpn.") -> None:
    """A card may only name backends its image was built with: the image installs the
    packages of its own ``vpn.backends`` and no others (stages/35-vpn). An image whose
    settings name no backends list (an older image) is not checked."""
    built = image_vpn.get("backends")
    if not isinstance(built, list):
        return
    installed = [name for name in BACKENDS if name in built]
    for index, name in enumerate(settings.backends):
        if name not in installed:
            raise VpnSettingsError(f"{where}backends[{index}]: {checks.shown(name)} is not in this image "
                                   f"(built with {', '.join(installed) or 'no VPN'}); build an image "
                                   "with it in vpn.backends")


def tinc_name(hostname: str) -> str:
    """tinc node names allow only letters, digits and '_'."""
    return "".join(c if c.isalnum() else "_" for c in hostname)
