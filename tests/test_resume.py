# SPDX-License-Identifier: MIT
"""Interrupt a build at several points, run it again, get the same image.

Each scenario has its own cache folder seeded with links to the finished snapshots of the
main cache (warm from the ``built`` fixture), and a hostname override, so stages 20 and later
rebuild (seconds, no emulation) while 00-base and 10-boot are reused. The test sends the
signal when the build log shows a chosen step has started.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, Built, requires_root, seeded_cache, sh, share_snapshots

pytestmark = [pytest.mark.slow, requires_root]
STEM = "ewindow-trixie-arm64"
FINAL_SUFFIXES = (".img", ".img.zst", ".img.bmap", ".manifest", ".build-info.json")


def build_argv(site: Path, cache: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "build.py"), "build", "-c", str(site), "--cache-dir", str(cache),
            "--out", str(out), "--set", "hostname=resume-test"]


def build(site: Path, cache: Path, out: Path) -> str:
    result = subprocess.run(build_argv(site, cache, out), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


def interrupted_build(site: Path, cache: Path, out: Path, trigger: str, signum: int) -> int:
    log = out.parent / f"interrupted-{signum}.log"
    with log.open("w") as stream:
        process = subprocess.Popen(build_argv(site, cache, out), stdout=stream, stderr=stream)
        deadline = time.monotonic() + 900
        while trigger not in log.read_text() and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"build ended before '{trigger}':\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(1.0)  # into the step, not at its first line
        process.send_signal(signum)
        return process.wait(timeout=120)


def tree_digest(image: Path, tmp: Path) -> dict[str, str]:
    """Every file of both partitions: content hash, mode and owner (symlinks: target)."""
    table = json.loads(sh("sfdisk", "--json", str(image)))["partitiontable"]["partitions"]
    boot_offset, root_offset = table[0]["start"] * 512, table[1]["start"] * 512
    dump = tmp / f"dump-{image.parent.name}"
    (dump / "root").mkdir(parents=True)
    (dump / "boot").mkdir()
    sh("debugfs", "-R", f"rdump -p / {dump / 'root'}", f"{image}?offset={root_offset}")
    sh("mcopy", "-s", "-n", "-i", f"{image}@@{boot_offset}", "::/*", str(dump / "boot"))
    digest: dict[str, str] = {}
    for path in sorted(dump.rglob("*")):
        rel = str(path.relative_to(dump))
        st = path.lstat()
        if path.is_symlink():
            digest[rel] = f"link {os.readlink(path)} {st.st_uid}:{st.st_gid}"
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
            meta = "" if rel.startswith("boot/") else f" {st.st_mode:o} {st.st_uid}:{st.st_gid}"
            digest[rel] = content + meta
        elif path.is_dir() and not rel.startswith("boot"):
            digest[rel] = f"dir {st.st_mode:o} {st.st_uid}:{st.st_gid}"
    sh("rm", "-rf", str(dump))
    return digest


@pytest.fixture(scope="module")
def resume_site(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("resume") / "site.yaml"
    site.write_text(f"admin:\n  authorized_keys: ['{built.public_key}']\n"
                    "image:\n  compression: [zstd]\n  zstd_level: 1\n")
    return site


@pytest.fixture(scope="module")
def reference(resume_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "out"
    cache = seeded_cache(tmp)
    log = build(resume_site, cache, out)
    assert "<== stage 20-system" in log  # the hostname override rebuilds the late stages
    share_snapshots(cache)  # a pruned main cache may have lacked 00-base: the scenarios need it
    return tree_digest(out / f"{STEM}.img", tmp)


@pytest.mark.parametrize(("trigger", "signum", "resumes_after"), [
    ("==> stage 30-access", signal.SIGINT, "20-system"),       # Ctrl-C in the middle of a stage
    ("==> stage 90-finalise", signal.SIGKILL, "40-ewindow"),   # kill -9: no cleanup at all
    ("==> assemble image", signal.SIGTERM, "90-finalise"),     # kill during image assembly
])
def test_interrupted_build_resumes_to_the_same_image(resume_site: Path, reference: dict[str, str],
                                                     tmp_path: Path, trigger: str, signum: int,
                                                     resumes_after: str) -> None:
    cache = seeded_cache(tmp_path)
    out = tmp_path / "out"
    status = interrupted_build(resume_site, cache, out, trigger, signum)
    assert status != 0
    leftovers = [p.name for p in out.glob(f"{STEM}*") if p.name.endswith(FINAL_SUFFIXES)]
    assert leftovers == [], "an interrupted build left artifacts under final names"
    log = build(resume_site, cache, out)
    assert f"==> stage {resumes_after}: cached" in log  # finished stages are not redone
    assert f"<== stage {resumes_after}:" not in log  # (only a stage that ran has an end line)
    subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=out, check=True,
                   capture_output=True)
    digest = tree_digest(out / f"{STEM}.img", tmp_path)
    differing = sorted(k for k in set(digest) | set(reference) if digest.get(k) != reference.get(k))
    assert differing == []
