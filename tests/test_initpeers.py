# SPDX-License-Identifier: MIT
"""PeerVPN's init peers resolved with a time limit (firstboot/vpn/initpeers.py); the real
stall and its cure with a DNS server that never answers are in tests/test_vpn_mesh.py."""

from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from firstboot.vpn.initpeers import parse_initpeers, resolve_all, resolved_initpeers, rewrite
from firstboot.vpn.peervpn import MAX_VALUE

CONF = ("networkname ewindow\npsk secret\n"
        "initpeers hub.example.org 7777 198.51.100.7 7777 slow.example.org 7000\n")
SLOW_DONE = threading.Event()


def resolver(host: str, port: str) -> list[str]:
    if host == "slow.example.org":
        time.sleep(3)
        SLOW_DONE.set()
        return ["192.0.2.9"]
    if host == "hub.example.org":
        return ["2001:db8::1", "192.0.2.1"]
    raise OSError("Name or service not known")


def test_names_become_addresses_and_a_name_too_slow_is_left_out() -> None:
    SLOW_DONE.clear()
    out = rewrite(CONF, resolver, seconds=0.5)
    assert not SLOW_DONE.is_set()  # the slow name's answer was not waited for
    assert out.splitlines()[2] == "initpeers 2001:db8::1 7777 192.0.2.1 7777 198.51.100.7 7777"
    assert out.splitlines()[:2] == CONF.splitlines()[:2]


def test_with_no_peer_resolved_the_names_stay_for_peervpn_to_retry() -> None:
    conf = "initpeers gone.example.org 7777 slow.example.org 7000\n"
    assert rewrite(conf, resolver, seconds=0.2) == conf


def test_a_config_without_initpeers_is_unchanged() -> None:
    assert rewrite("networkname ewindow\nport 7777\n", resolver) == "networkname ewindow\nport 7777\n"


def test_many_addresses_stay_within_peervpn_s_511_characters() -> None:
    many = {("big.example.org", "7777"): [f"2001:db8::{i:x}" for i in range(200)]}
    value = resolved_initpeers([("big.example.org", "7777")], many)
    assert len(value) <= MAX_VALUE and value.startswith("2001:db8::0 7777 2001:db8::1 7777")


@given(st.lists(st.tuples(st.sampled_from(["10.0.0.1", "::1", "a.example", "b.example"]),
                          st.sampled_from(["7777", "1"])), max_size=40))
def test_any_initpeers_give_resolved_or_kept_entries(entries: list[tuple[str, str]]) -> None:
    answers = resolve_all(entries, lambda host, port: ["192.0.2.5"] if host == "a.example" else [], 1.0)
    value = resolved_initpeers(entries, answers)
    assert len(value) <= MAX_VALUE or not any(h in ("10.0.0.1", "::1", "a.example") for h, _ in entries)
    pairs = parse_initpeers(value)
    if any(h != "b.example" for h, _ in entries):
        assert all(h in ("10.0.0.1", "::1", "192.0.2.5") for h, _ in pairs)
    else:
        assert pairs == entries
