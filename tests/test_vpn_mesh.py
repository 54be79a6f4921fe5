# SPDX-License-Identifier: MIT
"""Two windows and a hub in network namespaces, joined by the real VPN daemons.

Each node gets an identity from the identity module, its VPN keys and configs from the same
code firstboot runs on a window (firstboot.vpn.apply), and a tap0 set up the way the
image's networkd files do it (MAC before link up, EUI-64 link-local, the ULA without DAD).
The underlay is a bridge in its own namespace. tincd and yggdrasil come from Debian; PeerVPN
and cjdns run when their binaries are installed, and the test says why when they are not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firstboot.fsops import Root
from firstboot.identity import Identity, derive
from firstboot.steps import run as firstboot_run
from firstboot.vpn import CjdnsPeer, TincHub, VpnNode, VpnSettings
from firstboot.vpn.apply import apply

from .conftest import requires_root

pytestmark = [pytest.mark.slow, requires_root]
REPO = Path(__file__).resolve().parent.parent
MACS = {"hub": "b8:27:eb:00:00:01", "a": "b8:27:eb:00:00:0a", "b": "b8:27:eb:00:00:0b"}
UNDERLAY = {"hub": "10.77.0.1", "a": "10.77.0.2", "b": "10.77.0.3"}
PROBE_DEADLINE = 15.0  # issue 5: a stopped window is reported within this


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@dataclass(frozen=True)
class Probe:
    peers: int | None
    reachable: set[str]
    up: bool


@dataclass
class Node:
    name: str
    netns: str
    root: Path
    identity: Identity
    process: subprocess.Popen[bytes] | None = None

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.netns, *argv, check=check)

    def start(self, argv: list[str]) -> None:
        log = (self.root / "daemon.log").open("ab")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def probe(self, backend: str, *targets: str, endpoint: str | None = None) -> Probe:
        argv = [
            sys.executable,
            "-m",
            "hardware.vpnprobe",
            backend,
            *targets,
            "--state-dir",
            str(self.root / "run"),
        ]
        if endpoint:
            argv.append(f"--yggdrasil-endpoint={endpoint}")
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns, "env", f"PYTHONPATH={REPO}", *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(result.stdout)
        return Probe(data["peers"], set(data["reachable"]), data["up"])


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[dict[str, Node]]:
    """A switch namespace with a bridge, and one namespace per node with a veth and a tap0."""
    tag = f"ew{os.getpid() % 10000}"
    switch = f"{tag}-sw"
    nodes: dict[str, Node] = {}
    sh("ip", "netns", "add", switch)
    try:
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        for index, (name, mac) in enumerate(MACS.items()):
            netns = f"{tag}-{name}"
            sh("ip", "netns", "add", netns)
            nodes[name] = Node(name, netns, tmp_path / name, derive("", mac))
            (tmp_path / name / "run").mkdir(parents=True)
            sh(
                "ip",
                "link",
                "add",
                f"{tag}v{index}",
                "netns",
                switch,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns,
            )
            sh("ip", "-n", switch, "link", "set", f"{tag}v{index}", "master", "br0", "up")
            sh("ip", "-n", netns, "addr", "add", f"{UNDERLAY[name]}/24", "dev", "eth0")
            sh("ip", "-n", netns, "link", "set", "eth0", "up")
            sh("ip", "-n", netns, "link", "set", "lo", "up")
            make_tap(nodes[name])
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()
        for node in nodes.values():
            sh("ip", "netns", "del", node.netns, check=False)
        sh("ip", "netns", "del", switch, check=False)


def make_tap(node: Node) -> None:
    """What 10-ewindow-tap0.netdev/.network make: MAC before up, EUI-64 link-local, the ULA."""
    node.exec("ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
    node.exec("ip", "link", "set", "dev", "tap0", "address", node.identity.tap_mac)
    node.exec("sysctl", "-qw", "net.ipv6.conf.tap0.addr_gen_mode=0")
    node.exec("ip", "-6", "addr", "add", f"{node.identity.ula}/64", "dev", "tap0", "nodad")
    node.exec("ip", "link", "set", "dev", "tap0", "up")


def configure(node: Node, settings: VpnSettings) -> dict[str, str]:
    vpn = VpnNode(node.identity, node.identity.hostname, settings, state_dir=str(node.root / "run"))
    (node.root / "etc").mkdir(exist_ok=True)
    return apply(Root(node.root), vpn, firstboot_run)


def wait_for(condition: object, seconds: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if callable(condition) and condition():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")


def pings(node: Node, target: str) -> bool:
    return node.exec("ping", "-6", "-n", "-c", "1", "-W", "1", target, check=False).returncode == 0


# --- tinc ------------------------------------------------------------------------------------


def start_tinc(lan: dict[str, Node]) -> None:
    hub = lan["hub"]
    hub_public = configure(hub, VpnSettings(backends=("tinc",), role="hub"))
    hub_entry = TincHub(hub.identity.hostname, (UNDERLAY["hub"],), 655, hub_public["tinc_public_key"])
    for name in ("a", "b"):
        public = configure(lan[name], VpnSettings(backends=("tinc",), tinc_hubs=(hub_entry,)))
        # what `build.py hosts --tinc-hosts` gives the hub: each window's hosts/ file
        shutil.copy(
            lan[name].root / f"etc/tinc/ewindow/hosts/{public['tinc_name']}",
            hub.root / f"etc/tinc/ewindow/hosts/{public['tinc_name']}",
        )
    for node in lan.values():
        confbase = node.root / "etc/tinc/ewindow"
        node.start(["tincd", "-c", str(confbase), "-D", "-d3", f"--pidfile={node.root / 'tinc.pid'}"])


def test_tinc_switch_mode_joins_two_windows_over_tap0(lan: dict[str, Node]) -> None:
    start_tinc(lan)
    a, b, hub = lan["a"], lan["b"], lan["hub"]
    seconds = wait_for(lambda: pings(a, b.identity.ula), 40, "window a reaches window b's ULA")
    print(f"tinc: a reached b's ULA after {seconds:.1f} s")
    assert pings(b, a.identity.ula) and pings(a, hub.identity.ula)

    check_layer2_mesh(lan, "tinc")
    status = a.probe("tinc", b.identity.ula)
    assert status.peers == 2  # host-up hooks ran for the hub and b
    check_stop_is_seen(lan, "tinc")


def check_layer2_mesh(lan: dict[str, Node], backend: str) -> None:
    """Both windows reach each other's ULA over tap0, and ff02::1's responders on tap0 map
    back to the expected MACs through the predicted link-local addresses."""
    a, b, hub = lan["a"], lan["b"], lan["hub"]
    assert pings(b, a.identity.ula) and pings(a, hub.identity.ula)
    assert a.probe(backend, b.identity.ula, hub.identity.ula).reachable == {b.identity.ula, hub.identity.ula}
    macs = {
        address: n.identity.base_mac
        for n in lan.values()
        for address in (n.identity.link_local, n.identity.ula)
    }
    found = tap_responders(a)
    assert {macs.get(address, address) for address in found} == {MACS["hub"], MACS["b"]}


def check_stop_is_seen(
    lan: dict[str, Node], backend: str, target: str = "", endpoint: str | None = None
) -> None:
    a, b = lan["a"], lan["b"]
    target = target or b.identity.ula
    assert a.probe(backend, target, endpoint=endpoint).up
    b.stop()

    def gone() -> bool:
        return target not in a.probe(backend, target, endpoint=endpoint).reachable

    seconds = wait_for(gone, PROBE_DEADLINE, f"{backend}: the probe on a reports b gone")
    print(f"{backend}: b's stop seen by a's probe after {seconds:.1f} s")


def tap_responders(node: Node) -> set[str]:
    result = node.exec(
        sys.executable,
        "-c",
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from hardware.vpnprobe import responders as r; "
        "print(json.dumps(sorted(r('tap0'))))",
        str(REPO),
    )
    return set(json.loads(result.stdout))


def udp_reaches(source: Node, target: Node) -> bool:
    listener = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            target.netns,
            sys.executable,
            "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('', 9999)); s.settimeout(3); print(s.recv(16))",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(0.5)
    source.exec(
        sys.executable,
        "-c",
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        f".sendto(b'x', ('{UNDERLAY[target.name]}', 9999))",
        check=False,
    )  # EPERM when blocked
    out, _ = listener.communicate(timeout=10)
    return "b'x'" in out


def block_udp(node: Node) -> None:
    """Drop every UDP packet in and out of the node's underlay (a TCP-only network)."""
    node.exec("nft", "add", "table", "inet", "udp_blocked")
    for hook in ("input", "output"):
        node.exec(
            "nft", "add", "chain", "inet", "udp_blocked", hook, f"{{ type filter hook {hook} priority 0; }}"
        )
        node.exec("nft", "add", "rule", "inet", "udp_blocked", hook, "meta", "l4proto", "udp", "drop")


def test_tinc_works_when_udp_is_blocked(lan: dict[str, Node]) -> None:
    a, b = lan["a"], lan["b"]
    assert udp_reaches(a, b)
    block_udp(a)
    assert not udp_reaches(a, b) and not udp_reaches(b, a)
    start_tinc(lan)
    seconds = wait_for(lambda: pings(a, b.identity.ula), 60, "a reaches b with UDP blocked")
    print(f"tinc, UDP blocked: a reached b's ULA after {seconds:.1f} s (over the TCP meta connection)")


# --- yggdrasil -------------------------------------------------------------------------------


def test_yggdrasil_joins_two_windows(lan: dict[str, Node]) -> None:
    hub, a, b = lan["hub"], lan["a"], lan["b"]
    uri = f"tcp://{UNDERLAY['hub']}:12345"
    published = {}
    for node, settings in (
        (hub, VpnSettings(backends=("yggdrasil",), role="hub", yggdrasil_listen=(uri,))),
        (a, VpnSettings(backends=("yggdrasil",), yggdrasil_peers=(uri,))),
        (b, VpnSettings(backends=("yggdrasil",), yggdrasil_peers=(uri,))),
    ):
        published[node.name] = configure(node, settings)
        conf_file = node.root / "etc/yggdrasil/yggdrasil.conf"
        conf = json.loads(conf_file.read_text())
        assert conf["IfName"] == "ygg0" and conf["NodeInfo"] == {"name": node.identity.hostname}
        conf["AdminListen"] = f"unix://{node.root}/ygg.sock"  # three daemons on one host
        conf_file.write_text(json.dumps(conf))
        node.start(["yggdrasil", "-useconffile", str(conf_file)])
    target = published["b"]["yggdrasil_address"]
    seconds = wait_for(lambda: pings(a, target), 40, "a reaches b's Yggdrasil address")
    print(f"yggdrasil: a reached b after {seconds:.1f} s")
    endpoint = f"unix://{a.root}/ygg.sock"
    assert a.probe("yggdrasil", target, endpoint=endpoint).peers == 1  # the hub
    check_stop_is_seen(lan, "yggdrasil", target, endpoint)


# --- PeerVPN and cjdns: only with their binaries ------------------------------------------------


def needs(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(
            f"{binary} is not installed on this host: it is not in Debian. Install its .deb "
            "(README 'PeerVPN and cjdns packages') to run this two-window test"
        )


def test_peervpn_joins_two_windows_over_tap0(lan: dict[str, Node]) -> None:
    needs("peervpn")
    initpeers = (f"{UNDERLAY['hub']} 7777",)
    for node in lan.values():
        role = "hub" if node.name == "hub" else "window"
        configure(
            node,
            VpnSettings(
                backends=("peervpn",),
                role=role,
                psk="two-window-test-psk-0123456789",
                peervpn_initpeers=() if role == "hub" else initpeers,
            ),
        )
        node.start(["peervpn", str(node.root / "etc/peervpn/ewindow.conf")])
    seconds = wait_for(lambda: pings(lan["a"], lan["b"].identity.ula), 60, "a reaches b's ULA")
    print(f"peervpn: a reached b's ULA after {seconds:.1f} s")
    check_layer2_mesh(lan, "peervpn")
    check_stop_is_seen(lan, "peervpn")


def test_cjdns_joins_two_windows(lan: dict[str, Node]) -> None:
    needs("cjdroute")
    hub = lan["hub"]
    hub_public = configure(hub, VpnSettings(backends=("cjdns",), role="hub"))
    hub_conf = json.loads((hub.root / "etc/cjdroute.conf").read_text())
    hub_port = hub_conf["interfaces"]["UDPInterface"][0]["bind"].rsplit(":", 1)[1]
    password = hub_conf["authorizedPasswords"][0]["password"]
    peer = CjdnsPeer(f"{UNDERLAY['hub']}:{hub_port}", hub_public["cjdns_public_key"], password, "hub")
    published = {"hub": hub_public}
    for name in ("a", "b"):
        published[name] = configure(lan[name], VpnSettings(backends=("cjdns",), cjdns_peers=(peer,)))
    for node in lan.values():
        node.start(["sh", "-c", f"exec cjdroute --nobg < {node.root / 'etc/cjdroute.conf'}"])
    target = published["b"]["cjdns_address"]
    seconds = wait_for(lambda: pings(lan["a"], target), 60, "a reaches b's cjdns address")
    print(f"cjdns: a reached b after {seconds:.1f} s")
    check_stop_is_seen(lan, "cjdns", target)
