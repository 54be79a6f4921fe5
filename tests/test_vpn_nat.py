# SPDX-License-Identifier: MIT
"""PeerVPN windows at two sites, each behind its own NAT router, meet through the hub on the
"internet" (issue 21: the topology partner spaces have). The real PeerVPN built from
packages/, configured by firstboot's code, in network namespaces:

    a ── site A (10.60.1.0/24) ── router s ──┐
                                             ├── internet bridge ── hub (10.77.0.1)
    b ── site B (10.60.2.0/24) ── router t ──┘

Each router masquerades its site behind its own address with nftables, either keeping the
source port where it can (what most home and office routers do) or with ``fully-random``
ports (a symmetric NAT: the windows cannot reach each other directly, so the hub relays,
PeerVPN's ``enablerelay`` on the hub). The test prints the seconds from the second window's
start until the first reaches its ULA over tap0; it asserts that they meet, not how fast.
"""

from __future__ import annotations

import time

import pytest

from .conftest import requires_root
from .test_vpn_mesh import (  # noqa: F401 (lan_of is a fixture)
    UNDERLAY,
    LanFactory,
    Node,
    lan_of,
    pings,
    sh,
    start_peervpn,
    veth,
    wait_for,
)

pytestmark = [pytest.mark.slow, requires_root]
SITES = {"a": ("s", "10.60.1"), "b": ("t", "10.60.2")}  # window: (its router, its site's /24)


def behind_nat(window: Node, router: Node, site: str, masquerade: str) -> None:
    """Move ``window`` off the internet bridge into its own site behind ``router``."""
    window.exec("ip", "link", "del", "eth0")  # its veth to the bridge, both ends
    veth("site0", router.netns, "eth0", window.netns)
    router.exec("ip", "addr", "add", f"{site}.1/24", "dev", "site0")
    router.exec("ip", "link", "set", "site0", "up")
    router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    router.exec("nft", "add table ip nat; "
                       "add chain ip nat post { type nat hook postrouting priority 100; }; "
                       f"add rule ip nat post oifname eth0 {masquerade}")
    window.exec("ip", "addr", "add", f"{site}.2/24", "dev", "eth0")
    window.exec("ip", "link", "set", "eth0", "up")
    window.exec("ip", "route", "add", "default", "via", f"{site}.1")


@pytest.mark.usefixtures("daemons_on_path")
@pytest.mark.parametrize("masquerade", ["masquerade", "masquerade fully-random"])
def test_peervpn_windows_behind_two_nat_routers_meet(lan_of: LanFactory, masquerade: str) -> None:  # noqa: F811
    lan = lan_of("hub", "a", "b", "s", "t")
    hub = lan["hub"]
    for name, (router, site) in SITES.items():
        behind_nat(lan[name], lan[router], site, masquerade)
    a, b = lan["a"], lan["b"]
    # the sites reach the hub only through their routers, and never each other's site directly
    assert a.exec("ping", "-n", "-c", "1", "-W", "2", UNDERLAY["hub"], check=False).returncode == 0
    assert a.exec("ping", "-n", "-c", "1", "-W", "1", f"{SITES['b'][1]}.2", check=False).returncode != 0
    start_peervpn(hub)
    start_peervpn(a)
    wait_for(lambda: pings(a, hub.identity.ula), 30, "a reaches the hub")
    started = time.monotonic()
    start_peervpn(b)
    wait_for(lambda: pings(b, hub.identity.ula), 30, "b reaches the hub")
    with_hub = time.monotonic() - started
    met = wait_for(lambda: pings(a, b.identity.ula), 60, f"a reaches b behind {masquerade}")
    assert pings(b, a.identity.ula)
    print(f"peervpn behind two NAT routers ({masquerade}): b with the hub {with_hub:.1f} s after its "
          f"start, a reached b {met:.1f} s after that")
