# SPDX-License-Identifier: MIT
"""The user cache: shared .deb files and one root-tree snapshot per finished stage.

Layout under ``~/.cache/ewindow-image`` (or ``$XDG_CACHE_HOME/ewindow-image``, or
``--cache-dir``)::

    debs/                 .deb files shared by all builds
    stages/<key>/rootfs   the tree after the stage whose key is <key>
    stages/<key>/stage.json   name, inputs, timing
    work/                 the tree being built

A snapshot is written under a temporary name and renamed when complete, so a build killed
half-way never leaves a snapshot that looks finished.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runner import run
from ..trees import remove_tree


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ewindow-image"


def copy_tree_argv(source: Path, target: Path) -> list[str]:
    # cp keeps owners, modes, hard links, xattrs (file capabilities such as ping's) and
    # sparse files; --reflink=auto makes it nearly free on btrfs/xfs.
    return ["cp", "-a", "--reflink=auto", os.fspath(source), os.fspath(target)]


@dataclass(frozen=True)
class StageCache:
    root: Path

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def entry(self, key: str) -> Path:
        return self.root / "stages" / key

    def unfinished(self) -> list[Path]:
        """Snapshots being stored or deleted (``.partial``, ``.deleting``): a build's own."""
        return sorted(p for p in (self.root / "stages").glob("*.*") if p.suffix in (".partial", ".deleting"))

    def has(self, key: str) -> bool:
        return (self.entry(key) / "stage.json").is_file()

    def metadata(self, key: str) -> dict[str, Any]:
        data = json.loads((self.entry(key) / "stage.json").read_text())
        assert isinstance(data, dict)
        return data

    def store(self, key: str, tree: Path, metadata: dict[str, Any]) -> None:
        final = self.entry(key)
        if self.has(key):
            return
        partial = final.with_name(f"{key}.partial")
        remove_tree(partial)
        partial.mkdir(parents=True)
        run(copy_tree_argv(tree, partial / "rootfs"))
        size = int(run(["du", "-s", "--block-size=1", os.fspath(partial)], capture=True).split()[0])
        (partial / "stage.json").write_text(
            json.dumps({**metadata, "stored": time.time(), "size": size}, indent=2))
        remove_tree(final)
        partial.rename(final)

    def restore(self, key: str, tree: Path) -> None:
        remove_tree(tree)
        tree.parent.mkdir(parents=True, exist_ok=True)
        run(copy_tree_argv(self.entry(key) / "rootfs", tree))
        self.touch(key)

    def touch(self, key: str) -> None:
        """Record a use, for pruning least recently used snapshots first."""
        os.utime(self.entry(key) / "stage.json")

    def entries(self) -> list[CacheEntry]:
        """Finished snapshots, least recently used first."""
        found = []
        for meta_file in (self.root / "stages").glob("*/stage.json"):
            try:
                meta = json.loads(meta_file.read_text())
            except ValueError:
                continue
            found.append(CacheEntry(meta_file.parent.name, str(meta.get("stage", "?")),
                                    int(meta.get("size", 0)), meta_file.stat().st_mtime))
        return sorted(found, key=lambda e: e.last_used)

    def remove(self, key: str) -> None:
        entry = self.entry(key)
        if entry.is_symlink():  # a link to another cache's snapshot (tests seed caches so)
            entry.unlink()
            return
        # Rename first: a half-deleted snapshot must never look finished.
        doomed = entry.with_name(f"{key}.deleting")
        entry.rename(doomed)
        remove_tree(doomed)


@dataclass(frozen=True)
class CacheEntry:
    key: str
    stage: str
    size: int
    last_used: float


def select_prunable(entries: list[CacheEntry], *, now: float, max_age_days: float | None,
                    max_size: int | None) -> list[CacheEntry]:
    """Entries unused for longer than ``max_age_days``, then the least recently used until
    the rest fits in ``max_size`` bytes. ``entries`` are least recently used first."""
    doomed = [e for e in entries
              if max_age_days is not None and now - e.last_used > max_age_days * 86400]
    kept = [e for e in entries if e not in doomed]
    if max_size is not None:
        total = sum(e.size for e in kept)
        for entry in list(kept):
            if total <= max_size:
                break
            doomed.append(entry)
            kept.remove(entry)
            total -= entry.size
    return doomed


def enforce_limit(cache: StageCache, max_size: int) -> list[CacheEntry]:
    """Remove least recently used snapshots until the cache fits in ``max_size`` bytes."""
    doomed = select_prunable(cache.entries(), now=time.time(), max_age_days=None, max_size=max_size)
    for entry in doomed:
        cache.remove(entry.key)
    return doomed
