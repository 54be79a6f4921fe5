# SPDX-License-Identifier: MIT
"""The text of every file firstboot writes, as pure functions of the identity and settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from .identity import Identity
from .settings import Wifi

HEADER = "# Written by ewindow-firstboot from /var/lib/ewindow/identity.json; do not edit.\n"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def hosts_file(current: str, hostname: str) -> str:
    """/etc/hosts with the 127.0.1.1 line naming this host (Debian's convention)."""
    lines = [ln for ln in current.splitlines() if not ln.startswith("127.0.1.1")]
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("127.0.0.1")), 0)
    lines.insert(at, f"127.0.1.1\t{hostname}")
    return "\n".join(lines) + "\n"


def tap_netdev(identity: Identity, tap: str) -> str:
    # A persistent tap made before anything brings it up, by ewindow-tap.service from this
    # file (systemd.netdev's syntax, but not in networkd's folder: networkd would try to make
    # the tap again and fail with EBUSY on the tap PeerVPN holds); the VPN daemon attaches to it
    # by name (TUNSETIFF on an existing tap), so its MAC, and with it the link-local address,
    # are ours and not the random one a new tap gets. networkd configures it (tap_network).
    return (f"{HEADER}[NetDev]\nName={tap}\nKind=tap\nMACAddress={identity.tap_mac}\n")


def tap_link(identity: Identity, tap: str) -> str:
    # udev applies 99-default.link's MACAddressPolicy=persistent to every new interface, tap0
    # included: a MAC hashed from the machine-id, which can land after networkd set ours (a
    # second boot came up with 82:ec:4c:…). This .link sorts first and gives udev our MAC.
    return (f"{HEADER}[Match]\nOriginalName={tap}\n\n"
            f"[Link]\nMACAddressPolicy=none\nMACAddress={identity.tap_mac}\n")


def tap_network(identity: Identity, tap: str, prefix_len: int) -> str:
    # The kernel makes the link-local only once a process holds the tap (carrier), from the
    # MAC set here at creation: modified EUI-64 (RFC 4291 appendix A), not networkd's
    # default stable-privacy. The ULA is added without waiting for carrier and without DAD,
    # so services can bind to it before the VPN is up.
    return (f"{HEADER}[Match]\nName={tap}\n\n"
            f"[Link]\nMACAddress={identity.tap_mac}\nRequiredForOnline=no\n\n"
            "[Network]\nLinkLocalAddressing=ipv6\nIPv6LinkLocalAddressGenerationMode=eui64\n"
            "IPv6AcceptRA=no\nConfigureWithoutCarrier=yes\n\n"
            f"[Address]\nAddress={identity.ula}/{prefix_len}\nDuplicateAddressDetection=none\n")


METRICS_PORT = 9100  # the node exporter's (https://github.com/prometheus/prometheus/wiki/Default-port-allocations)


def metrics_socket(addresses: list[str]) -> str:
    """ewindow-metrics.socket's addresses: the window's VPN addresses only (README "Watching
    the fleet"); ``addresses`` are checked IPv6 addresses."""
    listen = "".join(f"ListenStream=[{address}]:{METRICS_PORT}\n" for address in addresses)
    return f"{HEADER}[Socket]\n{listen}"


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The 256-bit key wpa_passphrase derives (IEEE 802.11i PBKDF2-SHA1, 4096 rounds): the
    card keeps the key, not the passphrase, and no quoting of odd characters is needed."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def wpa_supplicant_conf(wifi: Wifi) -> str:
    lines = [HEADER.replace("/var/lib/ewindow/identity.json", "the deployment"),
             "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\nupdate_config=0\n"]
    if wifi.country:
        lines.append(f"country={wifi.country}\n")
    for network in wifi.networks:
        # ssid as hex: any bytes, no quoting rules
        lines.append(f"\nnetwork={{\n\tssid={network.ssid.encode().hex()}\n")
        if network.psk:
            lines.append(f"\tpsk={wpa_psk(network.ssid, network.psk)}\n}}\n")
        else:
            lines.append("\tkey_mgmt=NONE\n}\n")
    return "".join(lines)


def authorized_keys(current: str, added: tuple[str, ...]) -> str:
    lines = [ln for ln in current.splitlines() if ln.strip()]
    for key in added:
        if key.strip() and key.strip() not in lines:
            lines.append(key.strip())
    return "\n".join(lines) + "\n"


def public_identity(identity: Identity, hostname: str, host_keys: dict[str, str],
                    vpn: dict[str, str]) -> str:
    """What the window tells its admin, on the boot partition: nothing secret."""
    data = {**asdict(identity), "hostname": hostname, "ssh_host_keys": host_keys, "vpn": vpn}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
