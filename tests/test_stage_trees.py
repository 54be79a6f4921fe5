# SPDX-License-Identifier: MIT
"""One stage key, one tree (issue 24): the base stage built in two fresh caches, the first
with nothing downloaded yet (a fresh machine), the second with the downloads the main cache
holds after the session's build (a later build, another admin: every package there already,
and whatever older versions earlier builds left), is the same tree file by file: content,
type, mode, owner, times to the nanosecond, extended attributes, hard links. The main cache's
base tree, made for the session's image from whatever its downloads held then, is the same too.

The one slow check of its kind: two base stages, built at once (emulated dpkg keeps one core
busy each: ~3 minutes for both here instead of ~5.5 one after the other)."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ewindow_image.config import Config, ConfigLayers, load_config
from ewindow_image.pipeline.cache import StageCache, default_cache_dir
from ewindow_image.pipeline.driver import RepoPaths, plan, run_stages
from ewindow_image.pipeline.repro import tree_differences
from ewindow_image.runner import run

from .conftest import REPO, Built, requires_root, source_mirrors

pytestmark = [pytest.mark.slow, requires_root]


def base_tree(cfg: Config, cache: StageCache) -> tuple[str, Path]:
    """Build the base stage alone into ``cache``; its key and its stored tree."""
    build_plan = plan(cfg, RepoPaths(REPO), cache)
    base = build_plan.stages[0]
    assert base.stage.name == "00-base"
    run_stages(build_plan.stages[:1], build_plan.ctx, cache, cache.work / "rootfs", use_cache=True)
    run(["rm", "-rf", "--one-file-system", os.fspath(cache.work)])
    return base.key, cache.entry(base.key) / "rootfs"


def test_the_base_stage_is_one_tree_whatever_the_download_cache_held(built: Built, tmp_path: Path) -> None:
    cfg = load_config(ConfigLayers((built.site,)))
    cfg = dataclasses.replace(cfg, sources=dataclasses.replace(cfg.sources, mirrors=source_mirrors()))
    main = StageCache(default_cache_dir())
    fresh = StageCache(tmp_path / "fresh")
    later = StageCache(tmp_path / "later")
    later.root.mkdir()
    # a copy, not links: in CI the main cache is a bind mount, and links cannot cross it
    run(["cp", "-a", os.fspath(main.debs), os.fspath(later.debs)])
    held = sorted(p.name for p in later.debs.glob("*.deb"))
    # apt, run in a later stage's chroot, leaves partial/ owned by the target's _apt
    # (uid 42); mmdebstrap on an empty cache makes it root's: give this one the other owner.
    partial = later.debs / "partial"
    partial.mkdir(exist_ok=True)
    os.chown(partial, 0 if partial.stat().st_uid else 42, 0)
    (later.debs / "lock").touch()
    with ThreadPoolExecutor(max_workers=2) as pool:
        fresh_build, later_build = pool.submit(base_tree, cfg, fresh), pool.submit(base_tree, cfg, later)
        (key, tree), (later_key, later_tree) = fresh_build.result(), later_build.result()
    downloaded = sorted(p.name for p in fresh.debs.glob("*.deb"))
    assert len(downloaded) > 100  # it did download everything itself
    assert set(downloaded) <= set(held)  # and the later one had it all before it started

    assert later_key == key
    assert list(tree_differences(tree, later_tree, "", exact=True)) == []
    session_key = next(s["key"] for s in built.info["stages"] if s["name"] == "00-base")  # type: ignore[attr-defined]
    assert session_key == key
    assert list(tree_differences(tree, main.entry(key) / "rootfs", "", exact=True)) == []
    run(["rm", "-rf", "--one-file-system", os.fspath(tmp_path / "fresh"), os.fspath(tmp_path / "later")])
