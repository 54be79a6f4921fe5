# SPDX-License-Identifier: MIT
"""Source packages (packages/): the recipes build into real .debs for both architectures, and
every way a build can go wrong (a wrong pin, a source on no mirror, a patch that does not
apply, a failing compile) is one line naming the recipe (and its log), caches nothing, and
the next build after the fix succeeds. Through the real CLI, on a copy of the checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from ewindow_image.packages.recipe import load_recipes
from ewindow_image.packages.source import fetch, mirror_urls, tree_digest, unpack
from ewindow_image.packages.toolchain import host_suite
from ewindow_image.pipeline.cache import default_cache_dir
from ewindow_image.pipeline.driver import RepoPaths

from .conftest import SHARED_SOURCES, requires_root, seeded_cache, source_mirrors

pytestmark = [pytest.mark.slow, requires_root]
REPO = Path(__file__).resolve().parent.parent
RECIPES = load_recipes(REPO / "packages")


def packages_cli(repo: Path, cache: Path, out: Path, *args: str,
                 mirrors: tuple[str, ...] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["EWINDOW_SOURCE_MIRRORS"] = " ".join(mirrors if mirrors is not None else
                                             (env.get("EWINDOW_SOURCE_MIRRORS", "").split()
                                              or list(source_mirrors())))
    return subprocess.run([sys.executable, str(repo / "build.py"), "packages", "--cache-dir", str(cache),
                           "--out", str(out), *args], capture_output=True, text=True, env=env, check=False)


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_shared_mirror_holds_the_pinned_sources() -> None:
    """The archives CI builds from match the recipes' pins (commit and tree)."""
    mirror = Path(os.environ.get("EWINDOW_SOURCE_MIRRORS", str(SHARED_SOURCES)).split()[0])
    for recipe in RECIPES.values():
        digest, commit = tree_digest(mirror / recipe.source.file)
        assert (digest, commit) == (recipe.source.tree_sha256, recipe.source.commit)


def test_peervpn_builtin_dh_group_is_a_safe_prime(tmp_path: Path) -> None:
    """Patch 0004 checks PeerVPN's built-in DH group only for its structure at start (the
    primality test was 80 % of its start): the group is a constant, proved here once, by
    OpenSSL's own check (p and (p-1)/2 prime, a suitable generator)."""
    recipe = RECIPES["peervpn"]
    source = tmp_path / "peervpn"
    unpack(fetch(recipe, mirror_urls(source_mirrors()), tmp_path / "downloads"), source)
    dh_c = (source / "libp2psec/dh.c").read_text()
    body = re.search(r"-----BEGIN DH PARAMETERS-----\\n\\\n(.*?)-----END DH PARAMETERS-----", dh_c, re.S)
    assert body, "no built-in group in libp2psec/dh.c"
    lines = [line.removesuffix("\\n\\") for line in body.group(1).split()]
    pem = "-----BEGIN DH PARAMETERS-----\n" + "\n".join(lines) + "\n-----END DH PARAMETERS-----\n"
    checked = subprocess.run(["openssl", "dhparam", "-check", "-noout"], input=pem, capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0 and "appear to be ok" in checked.stdout + checked.stderr, checked
    # and patch 0004 is what the build applies: DH_check's place taken by the structural check
    patch = (REPO / "packages/peervpn/patches/0004-dh-builtin-group-checked-once.patch").read_text()
    assert "-\t\t\tret = DH_check(dhstate->dh, &err);" in patch and "DH_check_params" in patch


@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_recipes_build_real_debs_with_computed_depends(arch: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = packages_cli(REPO, default_cache_dir(), out, "--arch", arch)
    assert result.returncode == 0, result.stderr[-2000:]
    debs = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    # the window's own packages come too, for every architecture (tests/test_checkout_packages.py)
    own = {name for name, deb in debs.items() if deb.name.endswith("_all.deb")}
    assert own == {"ewindow-firstboot", "ewindow-agent", "ewindow-updates"}
    debs = {name: deb for name, deb in debs.items() if name not in own}
    assert set(debs) == set(RECIPES)
    machine = {"arm64": "EM_AARCH64", "amd64": "EM_X86_64"}[arch]
    for name, deb in debs.items():
        recipe = RECIPES[name]
        assert deb_field(deb, "Version") == recipe.deb_version and deb_field(deb, "Architecture") == arch
        assert recipe.source.commit in deb_field(deb, "X-Ewindow-Source")
        root = tmp_path / name
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        binary = root / dict(recipe.install)[next(iter(dict(recipe.install)))]
        with binary.open("rb") as handle:
            assert ELFFile(handle)["e_machine"] == machine
        copyright_text = (root / f"usr/share/doc/{name}/copyright").read_text()
        assert "License: GPL-3.0-or-later" in copyright_text and recipe.source.commit in copyright_text
        depends = deb_field(deb, "Depends")
        assert re.fullmatch(r"libc6 \(>= [0-9.]+\)" + (r", libssl3(t64)? \(>= [0-9.]+\)" if name == "peervpn"
                                                         else ""), depends), depends
    # unchanged: the cached .debs, nothing rebuilt
    metas = {m: m.stat().st_mtime for m in (default_cache_dir() / "packages").glob("*/*/package.json")}
    again = packages_cli(REPO, default_cache_dir(), out, "--arch", arch)
    assert again.returncode == 0 and "from source" not in again.stderr
    assert {m: m.stat().st_mtime for m in metas} == metas


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return RepoPaths(REPO).copy_to(tmp_path_factory.mktemp("repo") / "checkout").root


def edit_recipe(repo: Path, old: str, new: str) -> str:
    recipe = repo / "packages/peervpn/package.yaml"
    text = recipe.read_text()
    assert old in text
    recipe.write_text(text.replace(old, new))
    return text


def assert_refused(result: subprocess.CompletedProcess[str], pattern: str, cache: Path) -> None:
    assert result.returncode == 1, result.stderr
    # the progress lines (==>/<==) are the build's log; the failure is one error line
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) <= 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(pattern, errors[0]), errors[0]
    assert not list((cache / "packages" / "peervpn").glob("*/*.deb"))  # nothing cached
    assert not list((cache / "sources").glob("*.partial"))


def test_bad_builds_are_one_line_cache_nothing_and_the_fixed_build_succeeds(repo_copy: Path,
                                                                             tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    build = ("--arch", "amd64", "--suite", host_suite(), "peervpn")
    recipe = RECIPES["peervpn"]
    # a wrong pin: the mirror's archive does not match; it is not kept
    original = edit_recipe(repo_copy, recipe.source.tree_sha256, "f" * 64)
    result = packages_cli(repo_copy, cache, out, *build)
    assert_refused(result, rf"peervpn: {re.escape(recipe.source.file)}: tree sha256 "
                           rf"{recipe.source.tree_sha256}, the recipe pins f{{64}}", cache)
    assert not (cache / "sources" / recipe.source.file).exists()
    (repo_copy / "packages/peervpn/package.yaml").write_text(original)
    # a source on no mirror, and upstream out of reach
    edit_recipe(repo_copy, "url: https://github.com/peervpn/peervpn/archive/{commit}.tar.gz",
                "url: http://127.0.0.1:9/nowhere/{commit}.tar.gz")
    result = packages_cli(repo_copy, cache, out, *build, mirrors=(str(tmp_path / "empty-mirror"),))
    assert_refused(result, rf"peervpn: {re.escape(recipe.source.file)} is on no mirror", cache)
    (repo_copy / "packages/peervpn/package.yaml").write_text(original)
    # a patch that does not apply
    broken = repo_copy / "packages/peervpn/patches/0003-broken.patch"
    broken.write_text("Does not apply.\n\n--- a/peervpn.c\n+++ b/peervpn.c\n@@ -1,3 +1,3 @@\n-no such line\n"
                      "+another line\n context\n")
    result = packages_cli(repo_copy, cache, out, *build)
    log_file = cache / f"packages/logs/peervpn-{host_suite()}-amd64.log"
    assert_refused(result, rf"peervpn \(amd64\): patch 0003-broken.patch failed with exit status \d+; "
                           rf"log: {re.escape(str(log_file))}", cache)
    assert "0003-broken.patch" in log_file.read_text()
    broken.unlink()
    # a failing compile
    edit_recipe(repo_copy, "LIBS=-lcrypto peervpn", "LIBS=-lcrypto peervpn CFLAGS=-DPEERVPN_BROKEN=1 "
                                                    "CPPFLAGS=-include/nonexistent.h")
    result = packages_cli(repo_copy, cache, out, *build)
    assert_refused(result, r"peervpn \(amd64\): build step 1 failed with exit status 2; log: ", cache)
    assert "nonexistent.h" in log_file.read_text()
    # fixed: the next build succeeds (the source and the sysroot were kept, verified)
    (repo_copy / "packages/peervpn/package.yaml").write_text(original)
    result = packages_cli(repo_copy, cache, out, *build)
    assert result.returncode == 0, result.stderr[-2000:]
    deb = out / recipe.deb_name("amd64")
    assert deb.is_file() and deb_field(deb, "Package") == "peervpn"
    meta = json.loads(next((cache / "packages/peervpn").glob("*/package.json")).read_text())
    assert meta["pin"]["commit"] == recipe.source.commit
    # built in another folder, the same bytes as the main cache's build of the same key (the
    # source and sysroot paths do not reach the binary, file times are the commit's)
    same_key = default_cache_dir() / "packages/peervpn" / meta["pin"]["key"][:16] / deb.name
    packages_cli(REPO, default_cache_dir(), tmp_path / "main-out", *build)
    assert same_key.read_bytes() == deb.read_bytes()


def test_arch_and_suite_arguments_are_checked(tmp_path: Path) -> None:
    for args in (("--arch", "mips"), ("--suite", "../../etc"), ("--suite", "trixie; rm -rf /")):
        result = packages_cli(REPO, tmp_path / "cache", tmp_path / "out", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_build_whose_source_is_on_no_mirror_stops_before_any_stage(repo_copy: Path,
                                                                      tmp_path: Path) -> None:
    """Sources are known at plan time: a missing one is said before the base system is built
    (issue 21: it used to take 8 min 48 s on a fresh machine)."""
    cache = seeded_cache(tmp_path)
    for name in ("sources", "packages"):  # nothing downloaded, nothing built
        (cache / name).unlink()
    original = edit_recipe(repo_copy, "url: https://github.com/peervpn/peervpn/archive/{commit}.tar.gz",
                           "url: http://127.0.0.1:9/nowhere/{commit}.tar.gz")
    try:
        env = {**os.environ, "EWINDOW_SOURCE_MIRRORS": str(tmp_path / "empty-mirror")}
        result = subprocess.run([sys.executable, str(repo_copy / "build.py"), "build", "--cache-dir",
                                 str(cache), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                                env=env, check=False)
    finally:
        (repo_copy / "packages/peervpn/package.yaml").write_text(original)
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.search(r"^error: peervpn: peervpn-\S+ is on no mirror", result.stderr, re.M), result.stderr
    assert "==> stage" not in result.stderr and not list((tmp_path / "out").glob("*.img*"))
