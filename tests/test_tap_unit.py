# SPDX-License-Identifier: MIT
"""ewindow-tap.service's script (packages/ewindow-firstboot): the persistent tap firstboot's
.netdev describes, made before systemd-networkd so that PeerVPN and tinc need not wait for
networkd (issue 21). Run for real in a network namespace of its own: the kernel makes the tap.
The booted window (tests/test_vpn_windows.py) shows networkd taking the tap over."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firstboot import checks
from firstboot.checks import InvalidValue

from .conftest import REPO, requires_root
from .test_firstboot import firstboot, personalised

pytestmark = requires_root
SCRIPT = REPO / "packages/ewindow-firstboot/root/usr/sbin/ewindow-tap"
MARK = "--- the links ---"


def links(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    """The taps listed after the script's own lines."""
    listed = json.loads(result.stdout.partition(MARK)[2] or "[]")
    assert isinstance(listed, list)
    return listed


def in_own_netns(network_dir: Path) -> subprocess.CompletedProcess[str]:
    """The script, run twice (a restarted unit; not again after a failure), then the taps listed
    whatever it did, in a new network namespace (with its own /sys, as ``ip netns exec`` gives
    it). The exit status is the script's."""
    script = (f'mount -t sysfs sysfs /sys || exit 99; status=0; "{SCRIPT}" || status=$?; '
              f'[ $status != 0 ] || "{SCRIPT}" || status=$?; '
              f'echo {MARK}; ip -j link show type tun; exit $status')
    return subprocess.run(["unshare", "--net", "--mount", "sh", "-c", script], capture_output=True,
                          text=True, env={**os.environ, "EWINDOW_TAP_DIR": os.fspath(network_dir)},
                          check=False, timeout=60)


def netdev(folder: Path, name: str, mac: str = "de:a6:32:01:02:03") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tap0.netdev"
    path.write_text(f"[NetDev]\nName={name}\nKind=tap\nMACAddress={mac}\n")
    return path


def test_the_tap_firstboot_describes_is_made_once_with_the_windows_mac(tmp_path: Path) -> None:
    root = personalised(tmp_path)
    assert firstboot(root).returncode == 0
    identity = json.loads((root / "var/lib/ewindow/identity.json").read_text())
    result = in_own_netns(root / "etc/ewindow/tap")
    assert result.returncode == 0, result.stderr
    made = [(link["ifname"], link["address"]) for link in links(result)]
    assert made == [("tap0", identity["tap_mac"])]
    # made by the first run only; the second found it
    assert result.stdout.partition(MARK)[0] == f"tap0: tap made with {identity['tap_mac']}\n"
    assert result.stderr == ""


def test_no_netdev_no_tap(tmp_path: Path) -> None:
    (tmp_path / "network").mkdir()
    (tmp_path / "network/eth0.network").write_text("[Match]\nName=eth0\n")
    result = in_own_netns(tmp_path / "network")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(MARK) and links(result) == []


@pytest.mark.parametrize(("name", "mac", "field"), [
    ("-x", "de:a6:32:01:02:03", "Name"),
    ("..", "de:a6:32:01:02:03", "Name"),
    ("tap0;reboot", "de:a6:32:01:02:03", "Name"),
    ("a" * 16, "de:a6:32:01:02:03", "Name"),
    ("tap0", "DE:A6:32:01:02:03 up", "MACAddress"),
    ("tap0", "$(reboot)", "MACAddress"),
])
def test_a_bad_netdev_is_one_line_and_makes_nothing(tmp_path: Path, name: str, mac: str, field: str) -> None:
    path = netdev(tmp_path / "network", name, mac)
    result = in_own_netns(path.parent)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"{path}: {field}: ")
    assert result.stdout.startswith(MARK) and links(result) == []  # nothing made


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.from_regex(r"[A-Za-z0-9_.-]{1,16}", fullmatch=True))
@example(".x")
@example("-x")
@example("x-")
@example("_")
@example("a" * 15)
@example("a" * 16)
def test_the_script_and_the_shared_check_agree_on_names(tmp_path: Path, name: str) -> None:
    try:
        checks.interface_name(name)
        accepted = True
    except InvalidValue:
        accepted = False
    path = netdev(tmp_path / "network", name)
    result = in_own_netns(path.parent)
    assert (result.returncode == 0) == accepted, (name, result.stderr)
    if accepted:  # and the kernel took it
        assert [link["ifname"] for link in links(result)] == [name]
