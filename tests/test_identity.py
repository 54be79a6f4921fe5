# SPDX-License-Identifier: MIT
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from firstboot.identity import (
    IdentityError,
    RandomMacWarning,
    derive,
    link_local,
    read_identity,
    tap_mac,
    ula,
)

from .pitree import machine, nic, virtual

REPO = Path(__file__).resolve().parent.parent


# --- known answers (issue 4) -------------------------------------------------------------------


def test_known_answer_freebsd_example() -> None:
    assert tap_mac("f0:de:f1:b8:38:ec") == "f2:de:f1:b8:38:ec"
    assert ula("f0:de:f1:b8:38:ec") == "fde1:c0fe::f0de:f1b8:38ec"
    assert link_local("f2:de:f1:b8:38:ec") == "fe80::f0de:f1ff:feb8:38ec"


def test_known_answer_raspberry_pi() -> None:
    ident = derive("", "b8:27:eb:27:35:ed")
    assert ident.tap_mac == "ba:27:eb:27:35:ed"
    assert ident.ula == "fde1:c0fe::b827:eb27:35ed"
    assert ident.link_local == "fe80::b827:ebff:fe27:35ed"
    assert ident.hostname == "ewindow-2735ed"


def test_tap_mac_is_local_unicast_even_from_a_multicast_looking_base() -> None:
    assert tap_mac("01:00:5e:00:00:01") == "02:00:5e:00:00:01"
    assert tap_mac("ba:27:eb:27:35:ed") == "ba:27:eb:27:35:ed"  # already local: unchanged


def test_other_prefix_and_hostname_template() -> None:
    ident = derive("00000000b83c3c1b", "b8:27:eb:3c:3c:1b", prefix="fd42:d42:d42:7::/64",
                   hostname_template="window-{serial}")
    assert ident.ula == "fd42:d42:d42:7:0:b827:eb3c:3c1b"
    assert ident.hostname == "window-00000000b83c3c1b"
    with pytest.raises(IdentityError, match="fewer than 48 bits"):
        derive("", "b8:27:eb:3c:3c:1b", prefix="fd00::/96")


@pytest.mark.parametrize("bad", ["b8:27:eb:3c:3c", "zz:27:eb:3c:3c:1b", ""])
def test_bad_mac(bad: str) -> None:
    with pytest.raises(IdentityError, match="is not a MAC address"):
        derive("", bad)


# --- fixture trees -------------------------------------------------------------------------------


def test_pi3_eth0_from_usb_lan(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="00000000b83c3c1b")
    nic(root, "eth0", "b8:27:eb:3c:3c:1b", "smsc95xx")
    nic(root, "wlan0", "b8:27:eb:aa:bb:cc", "brcmfmac", wireless=True)
    virtual(root, "tap0", "ba:27:eb:3c:3c:1b")
    ident, source = read_identity(root)
    assert (ident.serial, ident.base_mac) == ("00000000b83c3c1b", "b8:27:eb:3c:3c:1b")
    assert source == "on-board wired eth0"
    assert ident.hostname == "ewindow-3c3c1b"


def test_pi4_end0_genet_and_a_usb_adapter(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="10000000a1b2c3d4")
    nic(root, "enx00e04c680001", "00:e0:4c:68:00:01", "r8152")  # a USB adapter sorts first
    nic(root, "end0", "dc:a6:32:01:02:03", "bcmgenet")
    ident, source = read_identity(root)
    assert ident.base_mac == "dc:a6:32:01:02:03" and source == "on-board wired end0"
    assert ident.ula == "fde1:c0fe::dca6:3201:203"


def test_firmware_mac_in_the_device_tree_needs_no_driver(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="00000000b83c3c1b")  # no NIC yet: smsc95xx still loading
    base = root / "sys/firmware/devicetree/base"
    (base / "aliases").mkdir()
    (base / "aliases/ethernet0").write_bytes(b"/soc/usb@7e980000/usb-port@1/usb-port@1/ethernet@1\0")
    node = base / "soc/usb@7e980000/usb-port@1/usb-port@1/ethernet@1"
    node.mkdir(parents=True)
    (node / "local-mac-address").write_bytes(bytes.fromhex("b827eb3c3c1b"))
    ident, source = read_identity(root)
    assert (ident.base_mac, source) == ("b8:27:eb:3c:3c:1b", "device tree ethernet0")
    (node / "local-mac-address").write_bytes(bytes(6))  # an empty placeholder is ignored
    nic(root, "eth0", "b8:27:eb:3c:3c:1c", "smsc95xx")
    assert read_identity(root)[1] == "on-board wired eth0"


def test_zero2w_has_only_wifi(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="00000000f00dcafe")
    nic(root, "wlan0", "d8:3a:dd:10:20:30", "brcmfmac", wireless=True)
    ident, source = read_identity(root)
    assert ident.base_mac == "d8:3a:dd:10:20:30" and source == "wireless wlan0"


def test_no_nic_falls_back_to_the_serial_rule(tmp_path: Path) -> None:
    root = machine(tmp_path, cpuinfo_serial="00000000b83c3c1b")  # 32-bit kernel style
    ident, source = read_identity(root)
    assert ident.base_mac == "b8:27:eb:3c:3c:1b" and source.startswith("serial")


def test_vm_with_overrides_on_the_command_line(tmp_path: Path) -> None:
    root = machine(tmp_path, cmdline="console=ttyAMA0 ewindow.serial=00000000b83c3c1b "
                                     "ewindow.mac=b8:27:eb:27:35:ed")
    nic(root, "eth0", "52:54:00:e1:c0:fe", "virtio_net")
    ident, source = read_identity(root)
    assert (ident.serial, ident.base_mac) == ("00000000b83c3c1b", "b8:27:eb:27:35:ed")
    assert source == "ewindow.mac="


def test_random_mac_is_warned_about(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="00000000b83c3c1b")
    nic(root, "eth0", "52:54:00:e1:c0:fe", "virtio_net", assign="1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ident, _ = read_identity(root)
    assert ident.base_mac == "52:54:00:e1:c0:fe"
    assert any(issubclass(w.category, RandomMacWarning) for w in caught)


def test_device_tree_serial_wins_over_cpuinfo(tmp_path: Path) -> None:
    root = machine(tmp_path, dt_serial="00000000aaaaaaaa", cpuinfo_serial="00000000bbbbbbbb")
    nic(root, "eth0", "b8:27:eb:aa:aa:aa", "smsc95xx")
    assert read_identity(root)[0].serial == "00000000aaaaaaaa"


def test_nothing_to_go_on_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="no serial number"):
        read_identity(machine(tmp_path))


# --- build.py identity ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "build.py"), "identity", *args],
                          capture_output=True, text=True, check=False)


def test_cli_prints_the_identity_as_json() -> None:
    result = cli("--mac", "F0-DE-F1-B8-38-EC")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "serial": "", "base_mac": "f0:de:f1:b8:38:ec", "tap_mac": "f2:de:f1:b8:38:ec",
        "ula": "fde1:c0fe::f0de:f1b8:38ec", "link_local": "fe80::f0de:f1ff:feb8:38ec",
        "hostname": "ewindow-b838ec",
    }
    serial = json.loads(cli("--serial", "00000000b83c3c1b", "--prefix", "fd42:d42:d42::/64").stdout)
    assert serial["base_mac"] == "b8:27:eb:3c:3c:1b" and serial["ula"] == "fd42:d42:d42::b827:eb3c:3c1b"


def test_cli_bad_input_is_one_line() -> None:
    result = cli("--mac", "nope")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --mac: 'nope' is not a MAC address like f0:de:f1:b8:38:ec"]
