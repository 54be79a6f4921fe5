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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import run


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
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        run(copy_tree_argv(tree, partial / "rootfs"))
        (partial / "stage.json").write_text(json.dumps({**metadata, "stored": time.time()}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)

    def restore(self, key: str, tree: Path) -> None:
        if tree.exists():
            shutil.rmtree(tree)
        tree.parent.mkdir(parents=True, exist_ok=True)
        run(copy_tree_argv(self.entry(key) / "rootfs", tree))
        os.utime(self.entry(key) / "stage.json")  # last use, for pruning
