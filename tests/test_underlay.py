# SPDX-License-Identifier: MIT
"""The cjdns gateway client's route watcher: which peers it pins, through which hop
(firstboot/vpn/underlay.py; the real thing runs in tests/test_vpn_gateway.py)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firstboot import checks
from firstboot.vpn.underlay import PROTO, Hop, needs_pin, next_hop, peer_addresses, pin_argv

# ip -j -4 route show table main on a client whose gateway gave it a default route
ROUTES: list[dict[str, object]] = [
    {"dst": "default", "gateway": "10.93.1.1", "dev": "eth0", "protocol": "dhcp", "metric": 1024},
    {"dst": "0.0.0.0/1", "dev": "tun0", "scope": "link"},
    {"dst": "128.0.0.0/1", "dev": "tun0", "scope": "link"},
    {"dst": "10.93.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "10.93.1.2"},
    {"dst": "10.50.0.0/16", "gateway": "10.93.1.254", "dev": "eth0", "metric": 10},
    {"dst": "10.50.0.0/16", "gateway": "10.93.1.253", "dev": "eth0", "metric": 5},
    {"dst": "10.93.2.2", "gateway": "10.93.1.99", "dev": "eth0", "protocol": PROTO},
    {"type": "blackhole", "dst": "10.60.0.0/16"},
]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_a_routed_peer_goes_through_the_underlays_router_not_the_tun_nor_an_old_pin() -> None:
    assert next_hop(ip("10.93.2.2"), ROUTES, {"tun0"}) == Hop("10.93.1.1", "eth0")


def test_the_most_specific_route_wins_then_the_lowest_metric() -> None:
    assert next_hop(ip("10.50.3.4"), ROUTES, {"tun0"}) == Hop("10.93.1.253", "eth0")


def test_an_on_link_peer_needs_no_pin_and_an_unreachable_one_gets_none() -> None:
    assert next_hop(ip("10.93.1.3"), ROUTES, {"tun0"}) is None
    assert next_hop(ip("10.60.1.1"), ROUTES, {"tun0"}) == Hop("10.93.1.1", "eth0")  # blackhole skipped
    assert next_hop(ip("10.93.2.2"), [r for r in ROUTES if r["dst"] != "default"], {"tun0"}) is None


def test_only_addresses_cjdroute_drops_its_exception_for_are_pinned() -> None:
    assert needs_pin(ip("10.93.2.2")) and needs_pin(ip("192.168.1.1")) and needs_pin(ip("172.31.0.1"))
    assert needs_pin(ip("fd12::1"))
    assert not any(needs_pin(ip(a)) for a in ("203.0.113.2", "172.32.0.1", "2001:db8::1"))


def test_the_pin_is_a_host_route_marked_as_the_watchers() -> None:
    assert pin_argv(ip("fd12::1"), Hop("fe80::1", "eth0")) == [
        "ip", "-6", "route", "replace", "fd12::1/128", "via", "fe80::1", "dev", "eth0", "proto", PROTO]


def test_the_peers_file_is_addresses_only_and_a_bad_line_is_named() -> None:
    assert peer_addresses("10.93.2.2\n\n fd12::1 \n", "f") == (ip("10.93.2.2"), ip("fd12::1"))
    with pytest.raises(checks.InvalidValue, match="^f:2: "):
        peer_addresses("10.93.2.2\n-oops\n", "f")


@given(st.text(max_size=200))
def test_any_peers_file_gives_addresses_or_a_named_error(text: str) -> None:
    try:
        found = peer_addresses(text, "peers")
    except checks.InvalidValue as exc:
        assert str(exc).startswith("peers:")
        return
    assert all(isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address) for a in found)
