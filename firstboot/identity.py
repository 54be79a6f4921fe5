# SPDX-License-Identifier: MIT
"""A window's identity, derived from its hardware. Standard library only: it runs on the
device (firstboot) and in the builder (``build.py identity``, the fleet registry).

- serial: the device tree's serial-number, else /proc/cpuinfo "Serial", else the kernel
  command line's ``ewindow.serial=`` (VMs, tests)
- base MAC: ``ewindow.mac=``, else the ``local-mac-address`` the Pi firmware puts into the
  device tree node of the ``ethernet0`` alias (there before any driver loads), else the
  permanent MAC of the on-board wired NIC whatever its name (eth0, end0, enx…), else of the
  wireless NIC, else b8:27:eb + the serial's low 24 bits (how the firmware makes the Pi 1–3's
  MAC)
- tap MAC: the base MAC with the locally-administered bit set and the multicast bit clear
- ULA: the /64 prefix (default fde1:c0fe::/64) + the 48-bit base MAC in the low bits, as the
  original EWindow put on tap0
- link-local: what the kernel makes for tap0 from the tap MAC (modified EUI-64, RFC 4291
  appendix A). EUI-64 flips the same bit back, so ``ff02::1%tap0`` responders map straight
  back to each window's base MAC.
"""

from __future__ import annotations

import ipaddress
import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from . import checks
from .checks import InvalidValue

DEFAULT_PREFIX = "fde1:c0fe::/64"
DEFAULT_HOSTNAME = "ewindow-{mac6}"
# Raspberry Pi OUIs (IEEE list); a MAC outside them is probably random (firmware hand-off
# broke, raspberrypi/firmware#846) or a USB adapter.
RASPBERRY_PI_OUIS = frozenset({"b8:27:eb", "dc:a6:32", "e4:5f:01", "28:cd:c1", "d8:3a:dd", "2c:cf:67"})
# Drivers of the Pi's own Ethernet: Pi 1–3 USB LAN951x/LAN7515, Pi 4/400 GENET.
ONBOARD_WIRED_DRIVERS = ("smsc95xx", "lan78xx", "bcmgenet")
SERIAL_RE = re.compile(r"^[0-9a-f]{8,16}$")


class IdentityError(InvalidValue):
    pass


class RandomMacWarning(UserWarning):
    pass


@dataclass(frozen=True)
class Identity:
    serial: str
    base_mac: str
    tap_mac: str
    ula: str
    link_local: str
    hostname: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def normalise_mac(text: str) -> str:
    """A unicast, non-zero MAC (checks.mac), lower case with colons."""
    try:
        return checks.mac(text)
    except InvalidValue as exc:
        raise IdentityError(str(exc)) from None


def normalise_serial(text: str) -> str:
    serial = text.strip().strip("\0").lower().removeprefix("0x")
    if not SERIAL_RE.fullmatch(serial):
        raise IdentityError(f"{checks.shown(text)} is not a serial number (8–16 hex digits)")
    return serial.rjust(16, "0")


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def tap_mac(base_mac: str) -> str:
    raw = bytearray(mac_bytes(base_mac))
    raw[0] = (raw[0] | 0x02) & ~0x01
    return format_mac(bytes(raw))


def ula(base_mac: str, prefix: str = DEFAULT_PREFIX) -> str:
    network = ipaddress.IPv6Network(prefix, strict=True)
    if network.prefixlen > 80:
        raise IdentityError(f"prefix {prefix} leaves fewer than 48 bits for the MAC")
    return str(network.network_address + int.from_bytes(mac_bytes(base_mac), "big"))


def link_local(mac: str) -> str:
    raw = bytearray(mac_bytes(mac))
    raw[0] ^= 0x02  # modified EUI-64 inverts the universal/local bit
    iid = bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + iid))


def mac_from_serial(serial: str) -> str:
    """The Pi 1–3 rule: b8:27:eb + the low 24 bits of the serial."""
    return "b8:27:eb:" + ":".join(serial[i:i + 2] for i in (10, 12, 14))


def derive(serial: str, base_mac: str, *, prefix: str = DEFAULT_PREFIX,
           hostname_template: str = DEFAULT_HOSTNAME) -> Identity:
    serial = normalise_serial(serial) if serial else ""
    base = normalise_mac(base_mac)
    hostname = hostname_template.format(mac6=base.replace(":", "")[-6:], serial=serial)
    return Identity(serial, base, tap_mac(base), ula(base, prefix), link_local(tap_mac(base)), hostname)


# --- reading the hardware (root = "/" on the device, a fixture tree in tests) ---------------


def kernel_options(root: Path) -> dict[str, str]:
    try:
        words = (root / "proc/cmdline").read_text().split()
    except OSError:
        return {}
    return dict(w.split("=", 1) for w in words if w.startswith("ewindow.") and "=" in w)


def read_serial(root: Path) -> str:
    dt = root / "sys/firmware/devicetree/base/serial-number"
    if dt.exists():
        return normalise_serial(dt.read_bytes().decode("ascii", "replace"))
    try:
        for line in (root / "proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Serial" and value.strip():
                return normalise_serial(value)
    except OSError:
        pass
    override = kernel_options(root).get("ewindow.serial")
    if override:
        return normalise_serial(override)
    raise IdentityError("no serial number: no device-tree serial-number, no Serial in /proc/cpuinfo, "
                        "no ewindow.serial= on the kernel command line")


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    driver: str
    wireless: bool
    permanent: bool  # addr_assign_type 0: the burnt-in (or firmware-given) address


def list_nics(root: Path) -> list[Nic]:
    nics = []
    net = root / "sys/class/net"
    for entry in sorted(net.iterdir()) if net.is_dir() else []:
        if not (entry / "device").exists():
            continue  # virtual: lo, tap0, bridges
        try:
            if (entry / "type").read_text().strip() != "1":  # ARPHRD_ETHER
                continue
            mac = normalise_mac((entry / "address").read_text())
            assign_file = entry / "addr_assign_type"
            assign = assign_file.read_text().strip() if assign_file.exists() else "0"
        except (OSError, IdentityError):
            continue
        driver_link = entry / "device/driver"
        driver = driver_link.resolve().name if driver_link.exists() else ""
        wireless = (entry / "wireless").exists() or (entry / "phy80211").exists()
        nics.append(Nic(entry.name, mac, driver, wireless, assign == "0"))
    return nics


def dt_ethernet_mac(root: Path) -> str | None:
    """The MAC the firmware wrote into the device tree for the ``ethernet0`` alias.

    The Pi firmware fills ``local-mac-address`` of that node from the OTP before the kernel
    starts, so it is readable while the NIC's driver (smsc95xx behind USB on a Pi 3, genet
    on a Pi 4) is still loading; a firstboot that waited for eth0 would otherwise race udev.
    https://www.raspberrypi.com/documentation/computers/configuration.html#device-trees-overlays-and-parameters
    """
    base = root / "sys/firmware/devicetree/base"
    try:
        node = (base / "aliases/ethernet0").read_bytes().rstrip(b"\0").decode("ascii")
        for prop in ("local-mac-address", "mac-address"):
            raw = base.joinpath(node.lstrip("/"), prop)
            if raw.exists() and len(data := raw.read_bytes()) == 6 and any(data):
                return format_mac(data)
    except (OSError, UnicodeDecodeError):
        pass
    return None


def choose_base_mac(nics: list[Nic], serial: str, override: str | None,
                    dt_mac: str | None = None) -> tuple[str, str]:
    """(MAC, where it came from)."""
    if override:
        return normalise_mac(override), "ewindow.mac="
    if dt_mac:
        return dt_mac, "device tree ethernet0"
    wired = [n for n in nics if not n.wireless]
    onboard = [n for n in wired if n.driver in ONBOARD_WIRED_DRIVERS]
    for group, label in ((onboard, "on-board wired"), (wired, "wired"),
                         ([n for n in nics if n.wireless], "wireless")):
        permanent = [n for n in group if n.permanent] or group
        if permanent:
            return permanent[0].mac, f"{label} {permanent[0].name}"
    if serial:
        return mac_from_serial(serial), "serial (Pi 1–3 rule)"
    raise IdentityError("no network interface and no serial number to derive a MAC from")


def read_identity(root: Path = Path("/"), *, prefix: str = DEFAULT_PREFIX,
                  hostname_template: str = DEFAULT_HOSTNAME) -> tuple[Identity, str]:
    """The identity of the machine whose /sys and /proc are under ``root``."""
    options = kernel_options(root)
    try:
        serial = read_serial(root)
    except IdentityError:
        if "ewindow.mac" not in options and not list_nics(root):
            raise
        serial = ""
    mac, source = choose_base_mac(list_nics(root), serial, options.get("ewindow.mac"), dt_ethernet_mac(root))
    if mac[:8] not in RASPBERRY_PI_OUIS:
        warnings.warn(f"MAC {mac} (from {source}) is not a Raspberry Pi one: a random or USB "
                      "adapter MAC makes the identity change with the hardware", RandomMacWarning,
                      stacklevel=2)
    return derive(serial, mac, prefix=prefix, hostname_template=hostname_template), source
