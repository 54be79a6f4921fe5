# SPDX-License-Identifier: MIT
"""Two EWindows booted side by side under qemu on a partner-space LAN without DHCP, joined by
the VPNs the default image carries: PeerVPN on tap0 and cjdns, both cross-built from source.

The LAN is a bridge in a network namespace with the two VMs' taps and the hub's veth; nothing
is routed out. There is no DHCP: the hub sends router advertisements (radvd) for a ULA prefix,
so the windows get addresses by SLAAC while networkd's DHCP client keeps asking (which is
what held network-online.target, and the VPN units behind it, for two minutes). The hub runs
the real PeerVPN and cjdroute (built for this host) in its namespace, configured by
firstboot's code like the windows'. The test logs in to each window over the LAN (the link-
local address of its NIC, from the hub's namespace) and checks what a window would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ewindow_image.qemu.boottest import BootSpec, boot
from firstboot.identity import derive
from firstboot.vpn import VpnSettings

from .conftest import REPO, Built, requires_root
from .test_vpn_mesh import (  # noqa: F401 (lan_of is a fixture)
    PSK,
    LanFactory,
    Node,
    cjdns_hub_peer,
    configure,
    lan_of,
    sh,
    start_cjdroute,
    start_peervpn,
)

pytestmark = [pytest.mark.slow, pytest.mark.boot, requires_root]
LAN_PREFIX = "fd42:77::"  # what the hub advertises
HUB_LAN = f"{LAN_PREFIX}1"
WINDOWS = {"a": "b8:27:eb:00:00:aa", "b": "b8:27:eb:00:00:bb"}


def nic_link_local(mac: str) -> str:
    """The kernel's EUI-64 link-local of a NIC with this MAC (the U/L bit flipped)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    groups = [
        octets[0] << 8 | octets[1],
        octets[2] << 8 | 0xFF,
        0xFE << 8 | octets[3],
        octets[4] << 8 | octets[5],
    ]
    return "fe80::" + ":".join(f"{g:x}" for g in groups)


def lan_without_dhcp(hub: Node, tmp_path: Path) -> None:
    """The hub's address on the LAN and router advertisements for the prefix, no default route."""
    hub.exec("ip", "-6", "addr", "add", f"{HUB_LAN}/64", "dev", "eth0", "nodad")
    hub.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")  # radvd advertises only as a router
    conf = tmp_path / "radvd.conf"
    conf.write_text(
        "interface eth0 {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n"
        "  AdvDefaultLifetime 0;\n"  # not a default router: nothing is routed out
        f"  prefix {LAN_PREFIX}/64 {{ AdvOnLink on; AdvAutonomous on; }};\n}};\n"
    )
    hub.start(["radvd", "--nodaemon", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"), "-m", "stderr"])


def personalised_cards(built: Built, tmp_path: Path, hub_cjdns: dict[str, str], hub_ula: str,
                       names: tuple[str, ...] = tuple(WINDOWS)) -> dict[str, Path]:
    secrets = tmp_path / "net/secrets.yaml"
    secrets.parent.mkdir()
    secrets.write_text(f"vpn:\n  psk: '{PSK}'\n")
    secrets.chmod(0o600)
    site = tmp_path / "deployment.yaml"
    site.write_text(
        json.dumps(
            {
                "admin": {"authorized_keys": [built.public_key]},
                "secrets_file": str(secrets),
                # the hub's tap0 ULA: on tap0 it answers ff02::1 like a window, and "vpn up"
                # must mean that another window answers
                "vpn": {"peervpn": {"initpeers": [f"{HUB_LAN} 7777"]}, "cjdns": {"peers": [hub_cjdns]},
                        "hub_addresses": [hub_ula]},
            }
        )
    )
    cards = {}
    for name in names:
        card = tmp_path / f"card-{name}.img"
        sh("cp", "--sparse=always", str(built.image), str(card))
        result = subprocess.run(
            [sys.executable, str(REPO / "build.py"), "personalise", str(card), "-c", str(site)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        cards[name] = card
    return cards


def wait_until(condition: Callable[[], bool], seconds: float) -> float | None:
    """Seconds until ``condition`` held (rounded), or None if it did not within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return round(time.monotonic() - start, 1)
        time.sleep(2)
    return None


class Window:
    """One VM, reached over SSH from the hub's namespace."""

    def __init__(self, name: str, hub: Node, key: Path) -> None:
        self.name, self.hub, self.key = name, hub, key
        self.identity = derive("", WINDOWS[name])
        self.address = f"{nic_link_local(WINDOWS[name])}%eth0"

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.hub.netns,
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-i",
                str(self.key),
                "-o",
                "IdentitiesOnly=yes",
                f"ewindow@{self.address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def agent_status(self) -> str:
        return self.ssh("systemctl show -P StatusText ewindow-agent").stdout.strip()


# From the hub's namespace: the body at a URL, or what went wrong (connection refused …)
FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())
except OSError as error:
    print("refused" if "refused" in str(error).lower() else f"error {error}")
"""


def scrape(hub: Node, address: str) -> str:
    """GET /metrics on port 9100 of ``address`` (a VPN or LAN address of a window)."""
    return hub.exec(sys.executable, "-c", FETCH, f"http://[{address}]:9100/metrics", check=False).stdout


def hub_on_lan(lan_of: LanFactory, tmp_path: Path, vms: int) -> tuple[Node, str, dict[str, str]]:  # noqa: F811
    """The hub (PeerVPN, cjdns, router advertisements) on the LAN's switch, taps vm0… for the
    VMs; returns the hub, the switch's namespace and the cjdns peer entry for the cards."""
    hub = lan_of("hub")["hub"]
    switch = hub.netns.rsplit("-", 1)[0] + "-sw"
    lan_without_dhcp(hub, tmp_path)
    start_peervpn(hub)
    hub_public = configure(hub, VpnSettings(backends=("cjdns",), role="hub"))
    start_cjdroute(hub)
    v4_peer = cjdns_hub_peer(hub, hub_public)
    hub_cjdns = {
        "address": f"[{HUB_LAN}]:{v4_peer.address.rsplit(':', 1)[1]}",
        "name": "hub",
        "password": v4_peer.password,
        "public_key": v4_peer.public_key,
    }
    for index in range(vms):
        sh("ip", "-n", switch, "tuntap", "add", "dev", f"vm{index}", "mode", "tap")
        sh("ip", "-n", switch, "link", "set", f"vm{index}", "master", "br0", "up")
    return hub, switch, hub_cjdns


def journal_seconds(journal: str, pattern: str) -> float | None:
    """The window's clock (seconds since its kernel started, which qemu starts at once) at
    the first journal line matching ``pattern`` (short-monotonic format)."""
    found = re.search(r"^\[\s*([0-9.]+)\] .*" + pattern, journal, re.M)
    return float(found.group(1)) if found else None


def test_a_window_alone_shows_the_hub_and_no_other_window(
    built: Built,
    lan_of: LanFactory,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    daemons_on_path: Path,
) -> None:
    """One window and its hub: the agent says "hub only" (the LED's "connected to the hub, no
    other window answers") for both backends, never "up", and the metrics count the hub apart."""
    hub, switch, hub_cjdns = hub_on_lan(lan_of, tmp_path, 1)
    card = personalised_cards(built, tmp_path, hub_cjdns, hub.identity.ula, names=("a",))["a"]
    window = Window("a", hub, built.private_key)
    seen: dict[str, Any] = {}

    def while_up() -> None:
        deadline = time.monotonic() + 300
        metrics = ""
        # until PeerVPN's hub answers on tap0 (cjdns' hub answers sooner: no DH, no RSA)
        while time.monotonic() < deadline and 'ewindow_vpn_hubs{backend="peervpn"} 1' not in metrics:
            time.sleep(2)
            metrics = scrape(hub, window.identity.ula)
        seen["metrics"] = metrics
        seen["status"] = window.agent_status()
        seen["journal"] = window.ssh(
            "sudo journalctl -b -o short-monotonic --no-pager -u ewindow-peervpn -u ewindow-agent "
            "| grep -E 'entering main loop|vpn: '", timeout=180).stdout

    boot(card, BootSpec(machine="virt", timeout=400, mac=WINDOWS["a"], tap="vm0", netns=switch),
         while_up=while_up, in_place=True)
    journal = str(seen["journal"])
    print(f"window alone: on its clock, PeerVPN ready {journal_seconds(journal, 'entering main loop')} s, "
          f"the agent's first 'hub only' {journal_seconds(journal, 'vpn: hub only')} s; {seen['status']}")
    assert "vpn hub only" in str(seen["status"]), seen["status"]
    assert "vpn: up" not in journal, journal  # the hub is never taken for a window
    text = str(seen["metrics"])
    for backend in ("peervpn", "cjdns"):
        assert f'ewindow_vpn_hubs{{backend="{backend}"}} 1' in text, text
        assert f'ewindow_vpn_peers{{backend="{backend}"}} 0' in text, text


def test_two_windows_on_a_lan_without_dhcp_join_over_peervpn_and_cjdns(
    built: Built,
    lan_of: LanFactory,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    daemons_on_path: Path,
) -> None:
    hub, switch, hub_cjdns = hub_on_lan(lan_of, tmp_path, len(WINDOWS))
    cards = personalised_cards(built, tmp_path, hub_cjdns, hub.identity.ula)
    windows = {name: Window(name, hub, built.private_key) for name in WINDOWS}
    both_up = threading.Barrier(len(WINDOWS), timeout=420)
    checked = threading.Barrier(len(WINDOWS), timeout=180)
    seen: dict[str, dict[str, Any]] = {name: {} for name in WINDOWS}

    def run_window(index: int, name: str) -> None:
        window, other = windows[name], windows["b" if name == "a" else "a"]
        power_on = time.monotonic()

        def while_up() -> None:
            deadline = power_on + 300
            status = ""
            while time.monotonic() < deadline and "vpn up" not in status:
                status = window.agent_status()
                time.sleep(2)
            seen[name]["vpn_up_s"] = time.monotonic() - power_on
            seen[name]["status"] = status
            both_up.wait()
            # PeerVPN's hub does not relay frames: the windows meet directly once the hub's
            # peer information has reached them
            seen[name]["ula_s"] = wait_until(
                lambda: window.ssh(f"ping -6 -n -c 1 -W 2 {other.identity.ula}").returncode == 0, 180
            )
            responders = window.ssh("ping -6 -n -c 2 -w 4 ff02::1%tap0").stdout
            seen[name]["responders"] = set(re.findall(r"from (fe80::[0-9a-f:]+)", responders))
            six = json.loads(other.ssh("ip -j -6 addr show dev tun0").stdout or "[]")
            fc = [a["local"] for link in six for a in link["addr_info"] if a["local"].startswith("fc")]
            seen[name]["cjdns_other"] = fc
            seen[name]["cjdns_s"] = (
                wait_until(lambda: window.ssh(f"ping -6 -n -c 1 -W 3 {fc[0]}").returncode == 0, 120)
                if fc
                else None
            )
            seen[name]["units"] = window.ssh(
                "systemctl is-active ewindow-peervpn ewindow-cjdns"
            ).stdout.split()
            seen[name]["ordering"] = window.ssh(
                "systemctl show --value --property=After,Wants,Requires ewindow-peervpn ewindow-cjdns"
            ).stdout
            # metrics over the VPN (PeerVPN's ULA, cjdns' address), never on the LAN
            seen[name]["metrics_ula"] = scrape(hub, window.identity.ula)
            tun0 = json.loads(window.ssh("ip -j -6 addr show dev tun0").stdout or "[]")
            own_fc = [a["local"] for link in tun0 for a in link["addr_info"]
                      if a.get("local", "").startswith("fc")]
            seen[name]["metrics_cjdns"] = scrape(hub, own_fc[0]) if own_fc else "no cjdns address"
            lan = window.ssh("ip -j -6 addr show scope global dev eth0 2>/dev/null || "
                             "ip -j -6 addr show scope global").stdout
            # (an interface without an IPv6 address lists an empty addr_info entry)
            lan_addresses = [a["local"] for link in json.loads(lan or "[]") for a in link["addr_info"]
                             if a.get("local", "").startswith(LAN_PREFIX.rstrip(":"))]
            seen[name]["metrics_lan"] = [scrape(hub, a) for a in lan_addresses]
            seen[name]["metrics_link_local"] = scrape(hub, f"{nic_link_local(WINDOWS[name])}%eth0")
            # nobody else sends with this window's tap0 MAC: the guard and DAD stay quiet
            seen[name]["tap_guard"] = window.ssh(
                "sudo journalctl -b -o cat --no-pager -u ewindow-tap-guard | tail -n 5; "
                "cat /run/ewindow-tap-guard/seen.json 2>/dev/null; ip -6 addr show dev tap0").stdout
            # tap0 made by ewindow-tap.service before networkd, which then only configured it
            seen[name]["tap0"] = window.ssh(
                "networkctl list --no-legend --no-pager tap0; "
                "sudo journalctl -b -o short-monotonic --no-pager -u systemd-networkd -u ewindow-tap "
                "-u systemd-modules-load | grep -E 'tap0|tun'").stdout
            seen[name]["final_status"] = window.agent_status()
            # for the closing numbers (issue 21): each VPN unit's start after firstboot's end, and
            # what the boot waited for
            seen[name]["unit_times"] = window.ssh(
                "for u in ewindow-firstboot ewindow-tap systemd-networkd ewindow-peervpn ewindow-cjdns "
                "ewindow-agent; do "
                "echo $u $(systemctl show -P ExecMainExitTimestampMonotonic $u) "
                "$(systemctl show -P ActiveEnterTimestampMonotonic $u); done; "
                "systemd-analyze critical-chain --no-pager ewindow-peervpn.service | tail -n 8; "
                "sudo journalctl -b -o short-monotonic --no-pager -u ewindow-firstboot "
                "| grep -E ' step |firstboot done'; "
                # on the window's own clock: PeerVPN ready for its first packet, the agent's first
                # "vpn: up" (the other window answers)
                "sudo journalctl -b -o short-monotonic --no-pager -u ewindow-peervpn -u ewindow-agent "
                "| grep -E 'entering main loop|vpn: up' | head -n 2", timeout=180).stdout
            # networkd (which cjdns' unit no longer waits for) left cjdns' routes alone: the
            # blackhole that keeps fc00::/8 off the LAN while cjdroute is down (gone without
            # ManageForeignRoutes=no), and tun0's
            seen[name]["routes"] = window.ssh("ip -6 route show table main type blackhole; "
                                              "ip -6 route show table main dev tun0").stdout
            seen[name]["rss_kib"] = window.ssh(
                "for unit in ewindow-agent ewindow-metrics; do "
                "ps -o rss= -p $(systemctl show -P MainPID $unit.service); done").stdout.split()
            checked.wait()

        spec = BootSpec(machine="virt", timeout=400, mac=WINDOWS[name], tap=f"vm{index}", netns=switch)
        seen[name]["report"] = boot(cards[name], spec, while_up=while_up, in_place=True).report

    with ThreadPoolExecutor(max_workers=len(WINDOWS)) as pool:
        futures = [pool.submit(run_window, index, name) for index, name in enumerate(WINDOWS)]
        for future in futures:
            future.result()
    for name in WINDOWS:
        result = seen[name]
        print(
            f"window {name}: the agent's first 'vpn: up' "
            f"{journal_seconds(str(result['unit_times']), 'vpn: up')} s "
            f"on its clock (over SSH: {result['vpn_up_s']:.0f} s after power-on, {result['status']}); "
            f"the other's ULA answered {result['ula_s']} s and its cjdns address {result['cjdns_s']} s "
            f"after both were up; RSS (KiB) agent, node exporter: {result['rss_kib']}; tap guard: "
            + " | ".join(line for line in str(result["tap_guard"]).splitlines() if "frame" in line)
        )
    for name in WINDOWS:
        other = windows["b" if name == "a" else "a"]
        result = seen[name]
        print(f"window {name}: firstboot's end, the units' start (µs), the critical chain (after "
              f"the kernel and initrd), firstboot's steps:\n{result['unit_times']}\ntap0:\n{result['tap0']}")
        assert "vpn up" in str(result["status"])
        assert "another station" not in str(result["final_status"]), result["tap_guard"]
        assert "dadfailed" not in str(result["tap_guard"]), result["tap_guard"]
        assert result["units"] == ["active", "active"]
        assert re.search(r"^blackhole fc00::/8 .*metric 500", str(result["routes"]), re.M), result["routes"]
        assert re.search(r"^fc00::/8 .*proto", str(result["routes"]), re.M), result["routes"]
        # both daemons start after firstboot and wait for nothing of the network's: not for
        # network-online.target (networkd's 2-minute wait-online timeout on a link without a
        # DHCP lease). Proved by the units' ordering, not by a clock (a busy CI host once took
        # 75 s, issue 21)
        ordering = str(result["ordering"])
        assert "ewindow-firstboot.service" in ordering and "network-online.target" not in ordering, ordering
        # nor for systemd-networkd: PeerVPN attaches to the tap0 ewindow-tap.service made, which
        # networkd found and configured (no error of its own about tap0)
        assert "ewindow-tap.service" in ordering and "systemd-networkd" not in ordering, ordering
        tap0 = str(result["tap0"])
        assert re.search(r"^\s*\d+ tap0 +ether +\S+ +configured", tap0, re.M), tap0
        assert f"tap0: tap made with {windows[name].identity.tap_mac}" in tap0, tap0
        assert not re.search(r"fail|error|busy|unknown|ignor", tap0, re.I), tap0
        assert result["ula_s"] is not None  # the other's ULA over tap0 (PeerVPN)
        assert other.identity.link_local in result["responders"]  # its predicted link-local
        assert result["cjdns_other"] and result["cjdns_s"] is not None  # the other's cjdns address
        report = result["report"]
        assert isinstance(report, dict) and report["hostname"] == windows[name].identity.hostname
        # the metrics: over both VPNs, in a format promtool accepts, saying what the LED says
        # (no-internet here: the LAN reaches no Internet, which the LED puts before vpn-up)
        led = str(result["status"]).split(":")[0]
        for over in ("metrics_ula", "metrics_cjdns"):
            text = str(result[over])
            assert f'ewindow_led_state{{state="{led}"}} 1' in text, (over, led, text[:500])
            assert re.search(r'ewindow_vpn_peers\{backend="peervpn"\} [1-9]', text), text
            # the hub the card names as cjdns peer, counted apart from the windows while it sends
            assert re.search(r'ewindow_vpn_hubs\{backend="cjdns"\} 1', text), text
            assert 'ewindow_package_info{package="ewindow-agent",version="' in text
            assert re.search(r'node_filesystem_avail_bytes\{[^}]*mountpoint="/"\} [0-9]', text)
            assert "node_boot_time_seconds " in text and "ewindow_firstboot_done 1" in text
            checked_format = subprocess.run(["promtool", "check", "metrics"], input=text,
                                            capture_output=True, text=True, check=False)
            assert checked_format.returncode == 0, checked_format.stdout + checked_format.stderr
        # and not on the partner space's LAN: its global and link-local addresses refuse
        assert result["metrics_lan"] and all(r.strip() == "refused" for r in result["metrics_lan"]), result
        assert str(result["metrics_link_local"]).strip() == "refused", result["metrics_link_local"]
