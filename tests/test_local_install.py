# SPDX-License-Identifier: MIT
"""A later stage's local .debs (apt.local_debs, the source packages) installed by the stage's
own apt script, emulated, in a copy of the session image's 30-access tree: without reading the
package lists when everything they depend on is installed (what made 35-vpn 12 s, issue 21),
and after ``apt-get update`` when one dependency is missing. The tree's copy gets a small
repository of its own in place of Debian's (the same update, 3 s instead of 45 s of emulated
index reading)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.pipeline import localdebs
from ewindow_image.pipeline import rootfs as rootfs_cmds
from ewindow_image.pipeline.cache import StageCache, default_cache_dir
from ewindow_image.runner import run

from .conftest import Built, requires_root
from .debs import small_deb

pytestmark = [pytest.mark.slow, requires_root]
NO_LISTS = "no package lists read"
REPO_IN_TREE = "/var/cache/ewindow-test-repo"


def deb(folder: Path, name: str, depends: str) -> Path:
    return small_deb(folder, name, depends=depends, files={f"usr/share/doc/{name}/README": f"{name}\n"})


def install(tree: Path, debs: list[Path], built: Built, repo: Path) -> str:
    cfg = load_config(ConfigLayers((built.site,)))
    names = [f"{localdebs.CHROOT_DIR}/{d.name}" for d in debs]
    binds = [(StageCache(default_cache_dir()).debs, "/var/cache/apt/archives"),
             (debs[0].parent, localdebs.CHROOT_DIR), (repo, REPO_IN_TREE)]
    return run(rootfs_cmds.chroot_argv(tree, rootfs_cmds.apt_install_script(cfg, names), binds=binds),
               capture=True)


def status(tree: Path, package: str) -> str:
    return subprocess.run(["dpkg-query", "--admindir", os.fspath(tree / "var/lib/dpkg"), "-W",
                           "-f=${db:Status-Abbrev}", package], capture_output=True, text=True,
                          check=False).stdout.strip()


def test_local_debs_read_the_lists_only_for_a_missing_dependency(built: Built, tmp_path: Path) -> None:
    key = next(s["key"] for s in built.info["stages"] if s["name"] == "30-access")  # type: ignore[attr-defined]
    tree = tmp_path / "rootfs"
    run(["cp", "-a", os.fspath(StageCache(default_cache_dir()).entry(key) / "rootfs"), os.fspath(tree)])
    # a flat repository with the dependency the second package misses, the tree's only source
    repo = tmp_path / "repo"
    repo.mkdir()
    deb(repo, "ewindow-test-dependency", "libc6")
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True,
                              text=True, check=True).stdout
    (repo / "Packages").write_text(packages)
    (tree / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{REPO_IN_TREE} ./\n")
    for other in (tree / "etc/apt/sources.list.d").iterdir():
        other.unlink()
    debs = tmp_path / "debs"
    debs.mkdir()

    satisfied = install(tree, [deb(debs, "ewindow-test-plain", "libc6, openssh-server")], built, repo)
    assert NO_LISTS in satisfied, satisfied
    assert "Release" not in satisfied and "Packages" not in satisfied, satisfied  # no index read
    assert status(tree, "ewindow-test-plain") == "ii"

    (debs / "ewindow-test-plain_1.0_all.deb").unlink()
    missing = install(tree, [deb(debs, "ewindow-test-needs", "ewindow-test-dependency")], built, repo)
    assert NO_LISTS not in missing and f"file:{REPO_IN_TREE} ./ Packages" in missing, missing
    assert status(tree, "ewindow-test-needs") == "ii", missing
    assert status(tree, "ewindow-test-dependency") == "ii", missing
    assert list((tree / "var/lib/apt/lists").iterdir()) == []  # read, then gone again
    run(["rm", "-rf", "--one-file-system", os.fspath(tree)])
