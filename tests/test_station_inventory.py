# SPDX-License-Identifier: MIT
"""The station's inputs and records, without cards: inventories (every entry checked as a
whole config, errors naming the file and entry), the names handed out (never one twice,
given back on failure), and the station log (whole lines, a torn line skipped)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ewindow_image.cards.flash import FlashRefused, check_target, parse_lsblk
from ewindow_image.config import ConfigLayers
from ewindow_image.errors import ConfigError
from ewindow_image.station.inventory import Names, load_entries, parse_entries, windows
from ewindow_image.station.record import Entry, Result, StationLog

from .keys import ed25519_line

KEY = ed25519_line("site", "admin@site")


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_entries_are_names_or_names_with_their_own_settings(tmp_path: Path) -> None:
    site = write(tmp_path / "site.yaml", f"admin:\n  authorized_keys: ['{KEY}']\n")
    inventory = write(tmp_path / "inventory.yaml", "- lab-1\n- hostname: cafe-1\n  wifi:\n    country: FR\n"
                      "    networks: [{ssid: cafe, psk: 'cafe passphrase'}]\n")
    entries = load_entries(inventory)
    assert [e.hostname for e in entries] == ["lab-1", "cafe-1"]
    found = windows(ConfigLayers((site,)), entries, inventory)
    assert found["lab-1"].config.wifi.networks == ()
    assert [n.ssid for n in found["cafe-1"].config.wifi.networks] == ["cafe"]
    assert found["cafe-1"].config.admin.authorized_keys == (KEY,)  # the site's, under its own


@pytest.mark.parametrize(("text", "message"), [
    ("lab-1\n", r"inventory.yaml: \(top level\): expected a list"),
    ("- lab_1\n", r"inventory.yaml: \[0\].hostname: "),
    ("- lab-1\n- lab-1\n", r"inventory.yaml: \[1\].hostname: lab-1 is entry \[0\] already"),
    ("- {hostname: a, suite: bookworm}\n", r"\[0\].suite: not a per-window setting"),
    ("- {hostname: a, admin: {user: root}}\n", r"\[0\].admin.user: not a per-window setting"),
    ("- {wifi: {}}\n", r"\[0\].hostname: expected a host name"),
    ("- 42\n", r"\[0\].hostname: expected a host name"),
])
def test_bad_entries_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    inventory = write(tmp_path / "inventory.yaml", text)
    with pytest.raises(ConfigError, match=message):
        load_entries(inventory)


def test_a_bad_setting_in_an_entry_names_the_entry(tmp_path: Path) -> None:
    inventory = write(tmp_path / "inventory.yaml", "- hostname: cafe-1\n  wifi:\n    country: France\n")
    with pytest.raises(ConfigError, match=r"inventory.yaml: \[0\]: wifi.country"):
        windows(ConfigLayers(), load_entries(inventory), inventory)


def test_an_inventory_with_secrets_must_be_private(tmp_path: Path) -> None:
    text = "- hostname: cafe-1\n  wifi: {country: FR, networks: [{ssid: cafe, psk: 'cafe passphrase'}]}\n"
    shared = write(tmp_path / "inventory.yaml", text, 0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\); chmod 600"):
        windows(ConfigLayers(), load_entries(shared), shared)
    names = write(tmp_path / "names.yaml", "- lab-1\n", 0o644)
    assert windows(ConfigLayers(), load_entries(names), names)  # names alone are no secret


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=4), max_leaves=12))
def test_any_yaml_value_is_an_inventory_or_a_config_error(data: object) -> None:
    try:
        entries = parse_entries(data, Path("inventory.yaml"))
    except ConfigError as exc:
        assert str(exc).startswith("inventory.yaml: ")
        return
    assert all(e.hostname for e in entries)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), unique=True, min_size=1),
       st.lists(st.booleans(), min_size=1, max_size=30))
def test_names_are_never_handed_out_twice(order: list[str], outcomes: list[bool]) -> None:
    names = Names(order)
    handed: list[str] = []
    lock = threading.Lock()

    def card(written: bool) -> None:
        name = names.reserve()
        if name is None:
            return
        with lock:
            assert name not in handed
            handed.append(name)
        if written:
            names.take(name)
        else:
            names.give_back(name)
            with lock:
                handed.remove(name)

    threads = [threading.Thread(target=card, args=(w,)) for w in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert names.taken == set(handed) and not names.reserved
    assert names.free() == len(order) - len(handed)


def entry(name: str, result: Result) -> Entry:
    return Entry("2026-12-02T10:00:00Z", "/dev/sdb", "7", 1 << 31, "", "", "", name, "x.img", "0" * 64,
                 result, "", 1.0, 100.0, 0.5, 0.5)


def test_the_log_is_whole_lines_and_only_written_cards_take_names(tmp_path: Path) -> None:
    record = StationLog(tmp_path / "station-log.jsonl")
    threads = [threading.Thread(target=record.append, args=(entry(f"w{i}", Result.WRITTEN if i % 2 else
                                                                  Result.PULLED),)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = record.path.read_text().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["device"] == "/dev/sdb" for line in lines)
    assert record.names_taken() == {f"w{i}" for i in range(1, 40, 2)}
    with record.path.open("a") as stream:
        stream.write('{"name": "torn", "res')  # a power cut in the middle of a line
    assert len(record.entries()) == 40


def test_a_read_only_card_is_refused() -> None:
    node = {"name": "/dev/sdb", "type": "disk", "rm": True, "ro": True, "size": 32 << 30, "tran": "usb"}
    disk = parse_lsblk(json.dumps({"blockdevices": [node]}))
    with pytest.raises(FlashRefused, match="read-only: is the card's lock switch on"):
        check_target(disk, 1 << 30, force=True)
    mounted = {**node, "ro": False, "children": [{"name": "/dev/sdb1", "type": "part",
                                                  "mountpoints": ["/media/old boot"]}]}
    found = parse_lsblk(json.dumps({"blockdevices": [mounted]}))
    assert found.mounted == (("/dev/sdb1", "/media/old boot"),)
