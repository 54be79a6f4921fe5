# SPDX-License-Identifier: MIT
"""What firstboot reads: the image's settings and the card's deployment file.

- ``/etc/ewindow/firstboot.json``: written by the build, the same on every card (no secrets).
- ``<boot>/ewindow/deployment.json``: written by ``build.py personalise`` onto one card's FAT
  partition (Wi-Fi, VPN secrets, extra SSH keys, host name). Firstboot moves it to
  ``/etc/ewindow/deployment.json`` (0600) and deletes it from the FAT partition.

Both are JSON because firstboot uses the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .identity import DEFAULT_HOSTNAME, DEFAULT_PREFIX

SETTINGS_FILE = "etc/ewindow/firstboot.json"
IMPORTED_DEPLOYMENT = "etc/ewindow/deployment.json"
STATE_DIR = "var/lib/ewindow"
IDENTITY_FILE = f"{STATE_DIR}/identity.json"
DONE_FILE = f"{STATE_DIR}/firstboot.done"
STATUS_FILE = "run/ewindow/firstboot.json"
DEPLOYMENT_NAME = "ewindow/deployment.json"  # on the boot partition
PUBLIC_IDENTITY_NAME = "ewindow/identity.json"  # on the boot partition, for the admin


class SettingsError(ValueError):
    """A bad settings or deployment file; the message names the file and the field."""


@dataclass(frozen=True)
class IdentitySettings:
    prefix: str = DEFAULT_PREFIX
    hostname_template: str = DEFAULT_HOSTNAME


@dataclass(frozen=True)
class WifiNetwork:
    ssid: str
    psk: str  # "" for an open network


@dataclass(frozen=True)
class Wifi:
    country: str = ""
    networks: tuple[WifiNetwork, ...] = ()


@dataclass(frozen=True)
class ImageSettings:
    boot_dir: str = "/boot/firmware"
    admin_user: str = "ewindow"
    tap: str = "tap0"
    identity: IdentitySettings = IdentitySettings()
    vpn: dict[str, Any] = field(default_factory=dict)  # firstboot.vpn.parse_vpn reads it


@dataclass(frozen=True)
class Deployment:
    hostname: str = ""
    identity: IdentitySettings | None = None
    authorized_keys: tuple[str, ...] = ()
    wifi: Wifi = Wifi()
    vpn: dict[str, Any] = field(default_factory=dict)


class _Reader:
    """Typed access to a JSON object with errors that name the file and the field."""

    def __init__(self, data: Any, source: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise SettingsError(f"{source}: {prefix or '(top level)'}: expected an object")
        self.data, self.source, self.prefix = data, source, prefix

    def _fail(self, key: str, message: str) -> SettingsError:
        return SettingsError(f"{self.source}: {self.prefix}{key}: {message}")

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self._fail(key, f"expected a string, got {value!r}")
        return value

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "expected a list of strings")
        return tuple(value)

    def sub(self, key: str) -> _Reader | None:
        if key not in self.data:
            return None
        return _Reader(self.data[key], self.source, f"{self.prefix}{key}.")

    def items(self, key: str) -> list[_Reader]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self._fail(key, "expected a list")
        return [_Reader(v, self.source, f"{self.prefix}{key}[{i}].") for i, v in enumerate(value)]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SettingsError(f"{path}: not valid JSON ({exc})") from None


def _identity(reader: _Reader | None) -> IdentitySettings | None:
    if reader is None:
        return None
    return IdentitySettings(reader.text("prefix", DEFAULT_PREFIX),
                            reader.text("hostname_template", DEFAULT_HOSTNAME))


def load_image_settings(path: Path) -> ImageSettings:
    if not path.exists():
        return ImageSettings()
    reader = _Reader(_load_json(path), str(path))
    vpn = reader.data.get("vpn", {})
    if not isinstance(vpn, dict):
        raise SettingsError(f"{path}: vpn: expected an object")
    return ImageSettings(
        boot_dir=reader.text("boot_dir", "/boot/firmware"),
        admin_user=reader.text("admin_user", "ewindow"),
        tap=reader.text("tap", "tap0"),
        identity=_identity(reader.sub("identity")) or IdentitySettings(),
        vpn=vpn,
    )


def parse_deployment(data: Any, source: str) -> Deployment:
    reader = _Reader(data, source)
    wifi = reader.sub("wifi")
    entries = wifi.items("networks") if wifi else []
    networks = tuple(WifiNetwork(n.text("ssid"), n.text("psk")) for n in entries)
    for index, network in enumerate(networks):
        if not 1 <= len(network.ssid.encode()) <= 32:
            raise SettingsError(f"{source}: wifi.networks[{index}].ssid: 1 to 32 bytes")
        if network.psk and not 8 <= len(network.psk) <= 63:
            raise SettingsError(f"{source}: wifi.networks[{index}].psk: 8 to 63 characters")
    admin = reader.sub("admin")
    vpn = reader.data.get("vpn", {})
    if not isinstance(vpn, dict):
        raise SettingsError(f"{source}: vpn: expected an object")
    return Deployment(
        hostname=reader.text("hostname"),
        identity=_identity(reader.sub("identity")),
        authorized_keys=admin.str_list("authorized_keys") if admin else (),
        wifi=Wifi(wifi.text("country") if wifi else "", networks),
        vpn=vpn,
    )


def load_deployment(path: Path) -> Deployment:
    return parse_deployment(_load_json(path), str(path))
