# SPDX-License-Identifier: MIT
"""The status probe's parsers: cjdns' bencoded admin API (property-based) and its peer count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hardware.vpnprobe import bdecode, bencode, established

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
