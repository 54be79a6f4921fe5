# SPDX-License-Identifier: MIT
"""The mesh VPN backends: their settings, and the files and keys each one needs on a window.

Rendering is pure (identity + settings → file contents); key generation runs the backend's
own tool. The same code renders the image's configs at first boot and the configs of the
two-window test in network namespaces. Keys are made on the device, once: a backend whose
key has been made before (``/var/lib/ewindow/vpn/<backend>.pub``) but whose private key is
gone fails loudly instead of silently becoming a new node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VpnSettingsError(f"{where}{key}: expected a list of strings")
    return tuple(value)


def _int(data: dict[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default) or default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise VpnSettingsError(f"{where}{key}: expected a port number, got {value!r}")
    return value


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


def parse_vpn(data: dict[str, Any], where: str = "vpn.") -> VpnSettings:
    """The ``vpn`` section of firstboot.json or deployment.json (the builder's config, as JSON)."""
    backends = _strings(data, "backends", where)
    for name in backends:
        if name not in BACKENDS:
            raise VpnSettingsError(f"{where}backends: '{name}' is not one of {', '.join(BACKENDS)}")
    tinc, ygg = _section(data, "tinc", where), _section(data, "yggdrasil", where)
    peervpn, cjdns = _section(data, "peervpn", where), _section(data, "cjdns", where)
    hubs = []
    for index, hub in enumerate(tinc.get("hubs") or []):
        at = f"{where}tinc.hubs[{index}]."
        if not isinstance(hub, dict) or not isinstance(hub.get("name"), str):
            raise VpnSettingsError(f"{at}name: missing")
        hubs.append(TincHub(hub["name"], _strings(hub, "addresses", at), _int(hub, "port", 655, at),
                            str(hub.get("public_key") or "")))
    peers = []
    for index, peer in enumerate(cjdns.get("peers") or []):
        at = f"{where}cjdns.peers[{index}]."
        if not isinstance(peer, dict):
            raise VpnSettingsError(f"{at[:-1]}: expected an object")
        peers.append(CjdnsPeer(str(peer.get("address", "")), str(peer.get("public_key", "")),
                               str(peer.get("password", "")), str(peer.get("name", ""))))
    return VpnSettings(
        backends=backends,
        role=str(data.get("role") or "window"),
        network_name=str(data.get("network_name") or "ewindow"),
        psk=str(data.get("psk") or ""),
        tinc_port=_int(tinc, "port", 655, f"{where}tinc."),
        tinc_hubs=tuple(hubs),
        yggdrasil_peers=_strings(ygg, "peers", f"{where}yggdrasil."),
        yggdrasil_listen=_strings(ygg, "listen", f"{where}yggdrasil."),
        yggdrasil_allowed_public_keys=_strings(ygg, "allowed_public_keys", f"{where}yggdrasil."),
        yggdrasil_multicast=_strings(ygg, "multicast_interfaces", f"{where}yggdrasil."),
        peervpn_port=_int(peervpn, "port", 7777, f"{where}peervpn."),
        peervpn_initpeers=_strings(peervpn, "initpeers", f"{where}peervpn."),
        cjdns_peers=tuple(peers),
        cjdns_beacon_interfaces=_strings(cjdns, "beacon_interfaces", f"{where}cjdns."),
        cjdns_udp_beacon=_bool(cjdns, "udp_beacon", f"{where}cjdns."),
        cjdns_gateway_key=str(cjdns.get("gateway_public_key") or ""),
        cjdns_gateway_clients=tuple(c for c in (cjdns.get("clients") or []) if isinstance(c, dict)),
    )


def tinc_name(hostname: str) -> str:
    """tinc node names allow only letters, digits and '_'."""
    return "".join(c if c.isalnum() else "_" for c in hostname)
