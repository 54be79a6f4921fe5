# SPDX-License-Identifier: MIT
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ewindow_image import hostdeps
from ewindow_image.pipeline.cache import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
# The local mirror of upstream source archives beside the checkout (nothing else reachable)
SHARED_SOURCES = REPO.parent / "shared" / "sources"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def fake_target(tmp_path: Path) -> Path:
    """A minimal target tree with its own users, different from the build host's."""
    root = tmp_path / "target"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "ewindow:x:1000:1000::/home/ewindow:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nsudo:x:27:ewindow\newindow:x:1000:\n")
    return root


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (make test runs as root)")


@dataclass(frozen=True)
class Built:
    out: Path
    site: Path
    public_key: str
    stem: str = "ewindow-trixie-arm64"

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.stem}{suffix}"

    @property
    def image(self) -> Path:
        return self.path(".img")

    @property
    def private_key(self) -> Path:
        return default_cache_dir() / "test-ssh" / "id_ed25519"

    @property
    def info(self) -> dict[str, object]:
        data = json.loads(self.path(".build-info.json").read_text())
        assert isinstance(data, dict)
        return data

    def partitions(self) -> tuple[int, int]:
        table = json.loads(sh("sfdisk", "--json", str(self.image)))["partitiontable"]
        return table["partitions"][0]["start"] * 512, table["partitions"][1]["start"] * 512

    def boot_file(self, name: str) -> bytes:
        boot_offset, _ = self.partitions()
        return subprocess.run(["mtype", "-i", f"{self.image}@@{boot_offset}", f"::/{name}"],
                              check=True, capture_output=True).stdout

    def boot_names(self) -> list[str]:
        boot_offset, _ = self.partitions()
        listing = sh("mdir", "-i", f"{self.image}@@{boot_offset}", "-b", "::/")
        return [n.removeprefix("::/") for n in listing.split()]

    def debugfs(self, request: str) -> str:
        _, root_offset = self.partitions()
        return sh("debugfs", "-R", request, f"{self.image}?offset={root_offset}")

    def root_file(self, path: str) -> str:
        return self.debugfs(f"cat {path}")

    def exists(self, path: str) -> bool:
        _, root_offset = self.partitions()
        result = subprocess.run(["debugfs", "-R", f"stat {path}", f"{self.image}?offset={root_offset}"],
                                capture_output=True, text=True, check=False)
        return "File not found" not in result.stderr and "Inode:" in result.stdout


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def admin_test_key(cache: Path) -> str:
    """An admin key kept in the cache, so repeated test builds hit the stage cache."""
    key = cache / "test-ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ewindow-test", "-f", str(key))
    return key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("build")
    public_key = admin_test_key(default_cache_dir())
    site = tmp / "site.yaml"
    # Both compressors, at fast levels: the test checks the round trip, not the ratio.
    site.write_text(f"admin:\n  authorized_keys: ['{public_key}']\n"
                    "image:\n  compression: [zstd, xz]\n  zstd_level: 3\n  xz_level: 0\n")
    out = tmp / "out"
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "build", "-c", str(site),
                             "--out", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # The tests that run the stages or the tree's arm64 programs in this process need
    # qemu-user's binfmt entry here too: build.py set it up in its own mount namespace, and
    # binfmt_misc drops every entry when its last mount goes (a fresh host has no other).
    hostdeps.ensure_binfmt()
    yield Built(out, site, public_key)


def seeded_cache(tmp: Path) -> Path:
    """A cache folder for one test: links to the main cache's downloads, packages and
    finished snapshots, so the test rebuilds only the stages its own settings change."""
    main = default_cache_dir()
    cache = tmp / "cache"
    (cache / "stages").mkdir(parents=True)
    # downloads, apt indexes, source archives, sysroots and source-built .debs: all keyed or
    # verified, so a test's build reuses them like the main cache would
    for name in ("debs", "apt", "sources", "sysroots", "packages"):
        (main / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(main / name)
    for meta in (main / "stages").glob("*/stage.json"):
        (cache / "stages" / meta.parent.name).symlink_to(meta.parent)
    return cache


def share_snapshots(cache: Path, stages: tuple[str, ...] = ("00-base", "10-boot")) -> None:
    """Move snapshots a test had to build itself into the main cache, for the next test.

    Only stages that no test setting changes: had a pruned main cache lost 00-base, every
    seeded cache would otherwise build it again."""
    main = default_cache_dir() / "stages"
    for meta in (cache / "stages").glob("*/stage.json"):
        entry = meta.parent
        if entry.is_symlink() or json.loads(meta.read_text()).get("stage") not in stages:
            continue
        if not (main / entry.name).exists():
            main.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mv", str(entry), str(main / entry.name)], check=True)
            entry.symlink_to(main / entry.name)


def source_mirrors() -> tuple[str, ...]:
    """Where the tests fetch upstream sources: EWINDOW_SOURCE_MIRRORS (read by the builder
    itself), else shared/sources beside the checkout."""
    if os.environ.get("EWINDOW_SOURCE_MIRRORS") or not SHARED_SOURCES.is_dir():
        return ()
    return (str(SHARED_SOURCES),)


@pytest.fixture(scope="session")
def source_binaries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real PeerVPN and cjdroute: packages/ built for this machine's architecture and
    release by the builder's own code (cached in the stage cache's folder), unpacked. Returns
    the folder with peervpn and cjdroute."""
    import dataclasses

    from ewindow_image.config import load_config
    from ewindow_image.packages.service import SourcePackages
    from ewindow_image.packages.toolchain import Target, host_arch, host_suite

    cfg = load_config()
    cfg = dataclasses.replace(cfg, sources=dataclasses.replace(cfg.sources, mirrors=source_mirrors()))
    packages = SourcePackages(cfg, REPO / "packages", default_cache_dir())
    root = tmp_path_factory.mktemp("source-packages")
    for planned in packages.plan(sorted(packages.recipes), Target(host_arch(), host_suite())):
        deb = packages.ensure(planned)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root / "usr/sbin"


@pytest.fixture
def daemons_on_path(source_binaries: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with the source-built daemons first, for the code that runs them by name."""
    monkeypatch.setenv("PATH", f"{source_binaries}:{os.environ.get('PATH', '')}")
    return source_binaries
