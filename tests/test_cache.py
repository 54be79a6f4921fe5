# SPDX-License-Identifier: MIT
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ewindow_image.config import parse_size
from ewindow_image.pipeline.cache import CacheEntry, StageCache, select_prunable
from ewindow_image.trees import remove_tree

from .conftest import requires_root

DAY = 86400.0


def entries() -> list[CacheEntry]:
    return [CacheEntry("a", "00-base", 600, 0 * DAY), CacheEntry("b", "10-boot", 600, 5 * DAY),
            CacheEntry("c", "20-system", 600, 9 * DAY)]


def test_prune_by_age_then_size() -> None:
    def keys(age: float | None, size: int | None) -> list[str]:
        return [e.key for e in select_prunable(entries(), now=10 * DAY, max_age_days=age, max_size=size)]

    assert keys(7, None) == ["a"]
    assert keys(None, 700) == ["a", "b"]
    assert keys(7, 600) == ["a", "b"]
    assert keys(30, 10_000) == []


@pytest.mark.parametrize(("text", "size"), [
    ("20G", 20 << 30), ("500M", 500 << 20), ("1.5T", int(1.5 * (1 << 40))),
    ("1024", 1024), ("2GiB", 2 << 30),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@requires_root
def test_store_restore_and_remove(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/x").write_text("x")
    (tree / "etc/link").symlink_to("x")
    cache.store("k1", tree, {"stage": "20-system", "inputs": {"a": "1"}})
    assert cache.has("k1") and not (cache.root / "stages/k1.partial").exists()
    meta = json.loads((cache.entry("k1") / "stage.json").read_text())
    assert meta["stage"] == "20-system" and meta["size"] > 0
    restored = tmp_path / "restored"
    cache.restore("k1", restored)
    assert (restored / "etc/x").read_text() == "x" and (restored / "etc/link").is_symlink()
    assert [e.key for e in cache.entries()] == ["k1"]
    cache.store("k0", tree, {"stage": "00-base"})
    time.sleep(0.05)  # file times tick coarsely (jiffies)
    cache.touch("k1")  # a build reusing k1 counts as its use: k0 becomes least recently used
    assert [e.key for e in cache.entries()] == ["k0", "k1"]
    cache.remove("k0")
    cache.remove("k1")
    assert not cache.has("k1") and cache.entries() == []


@requires_root
def test_remove_tree_never_deletes_through_a_mount(tmp_path: Path) -> None:
    precious = tmp_path / "host-dev"
    precious.mkdir()
    (precious / "sda").write_text("a device node stand-in")
    tree = tmp_path / "tree"
    (tree / "dev").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(precious), str(tree / "dev")], check=True)
    try:
        remove_tree(tree)
    finally:
        subprocess.run(["umount", str(tree / "dev")], check=False, capture_output=True)
    assert not tree.exists()
    assert (precious / "sda").read_text() == "a device node stand-in"


def test_the_size_limit_drops_least_recently_used_and_only_unlinks_borrowed(tmp_path: Path) -> None:
    from ewindow_image.pipeline.cache import enforce_limit

    main, seeded = StageCache(tmp_path / "main"), StageCache(tmp_path / "seeded")
    for cache, key, used in ((main, "borrowed", 100.0), (seeded, "old", 200.0), (seeded, "new", 300.0)):
        entry = cache.entry(key)
        (entry / "rootfs").mkdir(parents=True)
        (entry / "stage.json").write_text(json.dumps({"stage": key, "size": 1000}))
        os.utime(entry / "stage.json", (used, used))
    (seeded.root / "stages/borrowed").symlink_to(main.entry("borrowed"))
    doomed = enforce_limit(seeded, 1500)
    assert [e.key for e in doomed] == ["borrowed", "old"]
    assert [e.key for e in seeded.entries()] == ["new"]
    assert main.has("borrowed")  # the link went, the other cache's snapshot stayed
