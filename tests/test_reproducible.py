# SPDX-License-Identifier: MIT
"""The pieces of a reproducible image (README "Reproducing an image"): the release epoch,
clamped file times, the debugfs script, and how verify-repro names what differs. The
assembly itself is checked byte for byte in tests/test_image.py."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.errors import ConfigError, EWindowError
from ewindow_image.image import clock
from ewindow_image.pipeline import epoch as epochs
from ewindow_image.pipeline.repro import tree_differences

EPOCH = 1767225600


def test_times_newer_than_the_epoch_are_clamped_and_atimes_follow(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    old, new = tmp_path / "d/old", tmp_path / "d/new"
    old.write_text("o")
    new.write_text("n")
    os.utime(old, (EPOCH + 5, EPOCH - 100))
    os.symlink("new", tmp_path / "d/link")
    assert clock.clamp_times(tmp_path, EPOCH) >= 3  # new, link, d (and tmp_path) were newer
    assert old.stat().st_mtime == EPOCH - 100 and old.stat().st_atime == EPOCH - 100
    assert new.stat().st_mtime == EPOCH
    assert os.lstat(tmp_path / "d/link").st_mtime == EPOCH


def test_what_a_stage_wrote_gets_the_stage_clock_and_unpacked_files_keep_their_times(tmp_path: Path) -> None:
    unpacked, written = tmp_path / "unpacked", tmp_path / "written"
    unpacked.write_text("from a .deb")
    os.utime(unpacked, (1600000000, 1600000000))
    started = time.time_ns()
    written.write_text("by the stage")
    os.utime(tmp_path, (1600000000, 1600000000))  # the folder: as if unchanged
    assert clock.stamp_changed(tmp_path, started, EPOCH) == 1
    assert unpacked.stat().st_mtime == 1600000000 and written.stat().st_mtime == EPOCH


def test_the_debugfs_script_names_every_path_and_refuses_what_it_cannot_quote(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/with space").write_text("")
    script = clock.debugfs_times_script(tmp_path, EPOCH).splitlines()
    assert 'sif "/etc/with space" ctime @1767225600' in script
    assert script.count('sif "/etc" atime @1767225600') == 1 and len(script) == 2 + 2 * 2
    (tmp_path / 'etc/a"b').write_text("")
    with pytest.raises(EWindowError, match="debugfs cannot quote"):
        clock.debugfs_times_script(tmp_path, EPOCH)


def test_the_release_epoch_comes_from_the_environment_the_config_or_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert epochs.release_epoch(cfg, tmp_path) == epochs.ReleaseEpoch(1700000000, "SOURCE_DATE_EPOCH")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH: 'yesterday' is not a time"):
        epochs.release_epoch(cfg, tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    configured = load_config(ConfigLayers((), ("build.source_date_epoch=1600000000",)))
    assert epochs.release_epoch(configured, tmp_path).seconds == 1600000000
    env = {**os.environ, "GIT_AUTHOR_DATE": "@1650000000 +0000", "GIT_COMMITTER_DATE": "@1650000000 +0000"}
    for argv in (
        ["git", "init", "-q"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run(argv, cwd=tmp_path, env=env, check=True)
    assert epochs.release_epoch(cfg, tmp_path) == epochs.ReleaseEpoch(1650000000, "last commit")


def test_verify_repro_names_what_differs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for tree in (first, second):
        (tree / "etc").mkdir(parents=True)
        (tree / "etc/same").write_text("x")
        (tree / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
        os.utime(tree / "etc/same", (EPOCH, EPOCH))
    (second / "etc/shadow").write_text("root:*:19001:0:99999:7:::\n")
    (second / "etc/extra").write_text("")
    os.utime(second / "etc/same", (EPOCH - 10, EPOCH - 10))
    found = list(tree_differences(first, second, "/root"))
    assert found == [
        "/root/etc/extra (only in the second)",
        "/root/etc/same (mtime)",
        "/root/etc/shadow (content)",
    ]


def test_a_copy_without_git_takes_its_newest_source_file_not_what_running_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    (tmp_path / "stages/00-base").mkdir(parents=True)
    (tmp_path / "stages/00-base/stage.yaml").write_text("description: x\n")
    os.utime(tmp_path / "stages/00-base/stage.yaml", (1650000000, 1650000000))
    (tmp_path / "ewindow_image/pipeline/__pycache__").mkdir(parents=True)
    pycache = tmp_path / "ewindow_image/pipeline/__pycache__"
    (pycache / "plan.cpython-311.pyc").write_bytes(b"written by running it")
    (tmp_path / "ewindow_image/cards").mkdir()
    (tmp_path / "ewindow_image/cards/flash.py").write_text("# no part of the image\n")
    found = epochs.release_epoch(load_config(), tmp_path)
    assert found == epochs.ReleaseEpoch(1650000000, "newest file of the checkout (no git)")


def test_exact_comparison_sees_folder_times_attributes_and_hard_links(tmp_path: Path) -> None:
    """What two stage trees of one key must also agree in (issue 24)."""
    first, second = tmp_path / "first", tmp_path / "second"
    for tree in (first, second):
        (tree / "var/cache/apt/archives/partial").mkdir(parents=True)
        (tree / "bin").mkdir()
        (tree / "bin/ping").write_bytes(b"ping")
        (tree / "bin/a").write_text("a")
        os.symlink("a", tree / "bin/link")
    os.link(second / "bin/a", second / "bin/b")
    (first / "bin/b").write_text("a")
    os.setxattr(first / "bin/ping", "user.ewindow", b"cap")
    for tree in (first, second):
        for path in sorted(tree.rglob("*"), reverse=True):
            os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(second / "var/cache/apt/archives/partial", (EPOCH, EPOCH + 1))
    os.utime(second / "bin/link", (EPOCH, EPOCH + 1), follow_symlinks=False)
    assert list(tree_differences(first, second, "")) == []  # the image comparison's view
    assert list(tree_differences(first, second, "", exact=True)) == [
        "/bin/a (hard links)",
        "/bin/b (hard links)",
        "/bin/link (mtime)",
        "/bin/ping (extended attributes)",
        "/var/cache/apt/archives/partial (mtime)",
    ]
    os.chown(second / "var/cache/apt/archives/partial", 42, 0)
    assert "/var/cache/apt/archives/partial (mode or owner)" in tree_differences(first, second, "")


def test_cold_verify_repro_compares_the_stage_trees_key_by_key(tmp_path: Path) -> None:
    """One key, one tree: each stage both caches hold is compared exactly and named when it
    differs; a stage one cache lacks, or shares by a link, is not compared."""
    import json

    from ewindow_image.pipeline.cache import StageCache
    from ewindow_image.pipeline.repro import ReproResult, compared_stage_trees

    first, second = StageCache(tmp_path / "first"), StageCache(tmp_path / "second")
    for cache, owner in ((first, 0), (second, 42)):
        for key in ("k0", "k1"):
            tree = cache.entry(key) / "rootfs/var/cache/apt/archives/partial"
            tree.mkdir(parents=True)
            (cache.entry(key) / "stage.json").write_text(json.dumps({"stage": key}))
            if key == "k0":
                os.chown(tree, owner, 0)
    (first.entry("k2") / "rootfs").mkdir(parents=True)
    (first.entry("k2") / "stage.json").write_text("{}")
    for path in tmp_path.rglob("*"):
        os.utime(path, (EPOCH, EPOCH))
    stages = [{"name": "00-base", "key": "k0"}, {"name": "10-boot", "key": "k1"},
              {"name": "20-system", "key": "k2"}]
    found = compared_stage_trees(stages, first, second)
    assert found == {"00-base": ("/var/cache/apt/archives/partial (mode or owner)",), "10-boot": ()}
    assert not ReproResult({"x.img": ("a", "a")}, (), stage_trees=found).same
    assert ReproResult({"x.img": ("a", "a")}, (), stage_trees={"10-boot": ()}).same
