# SPDX-License-Identifier: MIT
"""The status probe's parsers: cjdns' bencoded admin API (property-based), its peer count,
which peers still send, and hubs told apart from windows."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hardware.vpnprobe import (
    FRESH_S,
    PeerActivity,
    bdecode,
    bencode,
    dad_failed,
    established,
    split_cjdns,
    split_hubs,
    tap_mac_of,
    tinc_peers,
)

# What the admin API sends: integers, strings, lists and string-keyed dicts, nested.
bvalues = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@given(bvalues)
def test_bencode_round_trips(value: object) -> None:
    assert bdecode(bencode(value)) == value


@given(st.binary(max_size=200))
def test_bdecode_refuses_garbage_with_value_error_only(data: bytes) -> None:
    try:
        bdecode(data)
    except ValueError:
        pass


def test_bdecode_bounds_nesting() -> None:
    deep = b"l" * 1000 + b"e" * 1000
    try:
        bdecode(deep)
    except ValueError as exc:
        assert "nested" in str(exc)
    else:
        raise AssertionError("1000 nested lists were accepted")


def test_established_counts_only_established_peers_over_pages() -> None:
    pages: list[object] = [
        {"peers": [{"state": "ESTABLISHED"}, {"state": "UNRESPONSIVE"}], "more": 1},
        {"peers": [{"state": "ESTABLISHED"}, {"state": "INIT"}, "junk"]},
        "not a dict",
    ]
    assert len(established(pages)) == 2
    assert established([]) == []


@given(st.binary(min_size=6, max_size=6).filter(lambda raw: not raw[0] & 1 and any(raw))
       .map(lambda raw: ":".join(f"{b:02x}" for b in raw)))
def test_a_windows_link_local_and_ula_map_to_its_tap_mac(mac: str) -> None:
    from firstboot.identity import derive

    identity = derive("", mac)  # any network card's MAC: unicast, not all zero
    assert tap_mac_of(identity.link_local) == tap_mac_of(identity.ula) == identity.tap_mac
    assert tap_mac_of(f"{identity.link_local}%tap0") == identity.tap_mac
    assert tap_mac_of("not an address") == ""


def test_hubs_are_told_apart_from_windows_on_tap0() -> None:
    from firstboot.identity import derive

    hub, a, b = (derive("", m) for m in ("b8:27:eb:00:00:01", "b8:27:eb:00:00:0a", "b8:27:eb:00:00:0b"))
    windows, hubs = split_hubs({hub.link_local, a.link_local, b.ula}, [hub.ula])
    assert windows == {a.tap_mac, b.tap_mac} and hubs == {hub.tap_mac}
    assert split_hubs({a.link_local, a.ula}, []) == ({a.tap_mac}, set())  # one window, two addresses


def peer(key: str, received: int, state: str = "ESTABLISHED") -> dict[str, object]:
    return {"addr": f"v21.0000.0000.0000.0013.{key}.k", "bytesIn": received, "state": state}


HUB_KEY, WINDOW_KEY = "1" * 52, "2" * 52


def test_a_cjdns_peer_counts_while_its_counter_moves_and_the_hub_apart() -> None:
    now = [100.0]
    activity = PeerActivity(clock=lambda: now[0])
    hub_keys = [f"{HUB_KEY}.k"]
    assert split_cjdns([peer(HUB_KEY, 10), peer(WINDOW_KEY, 5)], hub_keys, activity) == (1, 1)
    now[0] += FRESH_S - 0.1
    assert split_cjdns([peer(HUB_KEY, 10), peer(WINDOW_KEY, 9)], hub_keys, activity) == (1, 1)
    now[0] += 0.2  # the hub has sent nothing for longer than FRESH_S; the window has
    assert split_cjdns([peer(HUB_KEY, 10), peer(WINDOW_KEY, 9)], hub_keys, activity) == (1, 0)
    now[0] += FRESH_S  # both silent
    assert split_cjdns([peer(HUB_KEY, 10), peer(WINDOW_KEY, 9)], hub_keys, activity) == (0, 0)
    assert split_cjdns([peer(HUB_KEY, 11), peer(WINDOW_KEY, 9)], hub_keys, activity) == (0, 1)  # back
    assert split_cjdns([peer(HUB_KEY, 10)], hub_keys, None) == (0, 1)  # without activity: established


def test_tinc_tells_the_card_s_hubs_from_windows(tmp_path: Path) -> None:
    for name in ("hub1", "ewindow_0a", "ewindow_0b"):
        (tmp_path / name).touch()
    assert tinc_peers(tmp_path, ["hub1", "hub2"]) == (2, 1)
    assert tinc_peers(tmp_path / "none", ["hub1"]) == (0, 0)


def test_a_failed_duplicate_address_detection_on_tap0_is_seen(tmp_path: Path) -> None:
    table = tmp_path / "if_inet6"
    table.write_text("fe80000000000000ba27ebfffe00000a 05 40 20 80     tap0\n"
                     "fe80000000000000ba27ebfffe00000b 02 40 20 88     eth0\n")
    assert not dad_failed("tap0", table) and dad_failed("eth0", table)
    assert not dad_failed("tap0", tmp_path / "missing")


def test_the_cards_hub_addresses_reach_ping_only_as_addresses(tmp_path: Path) -> None:
    from hardware.facts import card_hubs

    active = tmp_path / "active.json"
    active.write_text('{"backends": ["peervpn"], "hubs": {"cjdns": ["k.k"], '
                      '"addresses": ["fde1:c0fe::1", "-f", "10.0.0.1; reboot"]}}')
    assert card_hubs(active) == {"cjdns": ("k.k",), "addresses": ("fde1:c0fe::1",)}
    active.write_text("not json")
    assert card_hubs(active) == {}
