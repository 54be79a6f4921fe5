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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checks
from .identity import DEFAULT_HOSTNAME, DEFAULT_PREFIX
from .vpn import VpnSettingsError, check_complete, check_installed, parse_vpn

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


MAX_FILE_BYTES = 1 << 20  # a deployment file is a few KiB


@dataclass(frozen=True)
class IdentitySettings:
    prefix: str = DEFAULT_PREFIX
    hostname_template: str = DEFAULT_HOSTNAME
    allow_global_prefix: bool = False


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

    def text(self, key: str, default: str = "", rule: Callable[[str], object] | None = None, *,
             secret: bool = False) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self._fail(key, "expected a string" + ("" if secret else f", got {checks.shown(value)}"))
        if rule is not None and value:
            try:
                rule(value)
            except checks.InvalidValue as exc:
                raise self._fail(key, str(exc)) from None
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self._fail(key, "expected true or false")
        return value

    def str_list(self, key: str, rule: Callable[[str], object] | None = None) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "expected a list of strings")
        for index, item in enumerate(value):
            try:
                if rule is not None:
                    rule(item)
            except checks.InvalidValue as exc:
                raise self._fail(f"{key}[{index}]", str(exc)) from None
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


def parse_json(raw: bytes, source: str) -> Any:
    """A JSON file that may come from a card: bounded, UTF-8, not nested without end."""
    if len(raw) > MAX_FILE_BYTES:
        raise SettingsError(f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"{source}: not UTF-8 text") from None
    except ValueError as exc:
        raise SettingsError(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:
        raise SettingsError(f"{source}: nested too deeply") from None


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror or exc}") from None
    return parse_json(raw, str(path))


def _identity(reader: _Reader | None) -> IdentitySettings | None:
    if reader is None:
        return None
    allow_global = reader.flag("allow_global_prefix")
    prefix = reader.text("prefix", DEFAULT_PREFIX)
    try:
        checks.identity_prefix(prefix, allow_global=allow_global)
    except checks.InvalidValue as exc:
        raise SettingsError(f"{reader.source}: {reader.prefix}prefix: {exc}") from None
    template = reader.text("hostname_template", DEFAULT_HOSTNAME, checks.hostname_template)
    return IdentitySettings(prefix, template, allow_global)


def load_image_settings(path: Path) -> ImageSettings:
    if not path.exists():
        return ImageSettings()
    reader = _Reader(_load_json(path), str(path))
    vpn = reader.data.get("vpn", {})
    if not isinstance(vpn, dict):
        raise SettingsError(f"{path}: vpn: expected an object")
    return ImageSettings(
        boot_dir=reader.text("boot_dir", "/boot/firmware", _absolute_path),
        admin_user=reader.text("admin_user", "ewindow", checks.login_name),
        tap=reader.text("tap", "tap0", checks.interface_name),
        identity=_identity(reader.sub("identity")) or IdentitySettings(),
        vpn=vpn,
    )


def _absolute_path(value: str) -> None:
    if not value.startswith("/") or ".." in value.split("/") or not value.isprintable():
        raise checks.InvalidValue(f"{checks.shown(value)} is not an absolute path")


DEPLOYMENT_KEYS = frozenset({"format", "hostname", "identity", "admin", "wifi", "vpn"})
FORMAT = 1


def parse_deployment(data: Any, source: str, image_vpn: dict[str, Any] | None = None) -> Deployment:
    """A card's deployment file, every value checked: the builder's personalise runs this
    same parser on what it writes, so a card is refused when it is made, not at first boot.
    With ``image_vpn`` (the image's own VPN settings) the merged VPN settings must also be
    complete enough for every backend they name."""
    reader = _Reader(data, source)
    unknown = sorted(str(key) for key in reader.data if key not in DEPLOYMENT_KEYS)
    if unknown:
        raise SettingsError(f"{source}: {checks.shown(unknown[0])}: unknown key")
    if reader.data.get("format", FORMAT) != FORMAT:
        raise SettingsError(f"{source}: format: {checks.shown(reader.data.get('format'))} is not {FORMAT} "
                            "(a card made by another version of ewindow-image)")
    wifi = reader.sub("wifi")
    entries = wifi.items("networks") if wifi else []
    networks = tuple(WifiNetwork(n.text("ssid", "", checks.wifi_ssid), n.text("psk", secret=True))
                     for n in entries)
    for index, network in enumerate(networks):
        if not network.ssid:
            raise SettingsError(f"{source}: wifi.networks[{index}].ssid: missing")
        try:
            checks.wifi_psk(network.psk)
        except checks.InvalidValue as exc:
            raise SettingsError(f"{source}: wifi.networks[{index}].psk: {exc}") from None
    country = wifi.text("country", "", checks.wifi_country) if wifi else ""
    if networks and not country:
        raise SettingsError(f"{source}: wifi.country: required with wifi.networks")
    admin = reader.sub("admin")
    vpn = reader.data.get("vpn", {})
    if not isinstance(vpn, dict):
        raise SettingsError(f"{source}: vpn: expected an object")
    try:
        settings = parse_vpn(vpn)
        if image_vpn is not None:
            settings = parse_vpn({**image_vpn, **vpn})
            check_installed(settings, image_vpn)
            check_complete(settings)
    except VpnSettingsError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return Deployment(
        hostname=reader.text("hostname", "", checks.hostname),
        identity=_identity(reader.sub("identity")),
        authorized_keys=admin.str_list("authorized_keys", checks.ssh_public_key) if admin else (),
        wifi=Wifi(country, networks),
        vpn=vpn,
    )


def load_deployment(path: Path) -> Deployment:
    return parse_deployment(_load_json(path), str(path))
