# SPDX-License-Identifier: MIT
"""What apt would install: the package versions a stage resolves to on the mirror today.

A stage's cache key includes these versions, so a rebuild happens exactly when a package the
stage installs changed on the mirror (a security update, say), and ``plan`` can name it. The
host's apt resolves for arm64 against an empty dpkg status in a private directory under the
cache; nothing on the host's own apt setup is touched.

Resolving ~180 packages takes ~5 s, ``apt-get update`` with unchanged lists ~1 s: the
resolution is memoised under the digest of the downloaded indexes and the requested packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import CommandError, EWindowError
from ..log import log
from ..runner import run
from .sources import apt_sources, extra_repo_lines

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# What mmdebstrap's minbase variant installs besides the requested packages.
MINBASE = ("apt", "?essential", "?priority(required)")
INST_LINE = re.compile(r"^Inst (\S+) \((\S+) ")
# apt-get --print-uris download: 'URL' FILE SIZE SHA256:HEX
URI_LINE = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha256>[0-9a-f]{64})$")


@dataclass(frozen=True)
class MirrorDeb:
    """A .deb as the mirror's signed index names it: where it is and its sha256."""

    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Resolution:
    versions: tuple[tuple[str, str], ...]  # (package, version), sorted
    lists_digest: str


def parse_simulation(output: str) -> tuple[tuple[str, str], ...]:
    """``apt-get --simulate install`` lines ``Inst NAME (VERSION …)`` → sorted pairs."""
    pairs = {m.group(1): m.group(2) for m in map(INST_LINE.match, output.splitlines()) if m}
    return tuple(sorted(pairs.items()))


def parse_download_uris(output: str) -> dict[tuple[str, str], MirrorDeb]:
    """``apt-get --print-uris download`` lines → {(package, version): MirrorDeb}. The file
    name is ``NAME_VERSION_ARCH.deb`` with the version's epoch colon as ``%3a``."""
    found = {}
    for match in map(URI_LINE.match, output.splitlines()):
        if not match:
            continue
        parts = urllib.parse.unquote(match["file"]).removesuffix(".deb").split("_")
        if len(parts) == 3:
            found[(parts[0], parts[1])] = MirrorDeb(match["url"], int(match["size"]), match["sha256"])
    return found


class AptResolver:
    """apt on the build host, configured for the target's suite, architecture and mirror."""

    def __init__(self, cfg: Config, cache_root: Path) -> None:
        self.cfg = cfg
        sources = "\n".join(apt_sources(cfg) + extra_repo_lines(cfg))
        tag = hashlib.sha256(sources.encode()).hexdigest()[:12]
        self.root = cache_root / "apt" / f"{cfg.suite}-{cfg.arch}-{tag}"
        self.updated = False

    def options(self) -> list[str]:
        r = os.fspath(self.root)
        options = {
            "Dir": r, "Dir::State::Status": f"{r}/status", "Dir::Bin::Methods": "/usr/lib/apt/methods",
            "Dir::Cache::pkgcache": f"{r}/pkgcache.bin", "Dir::Cache::srcpkgcache": f"{r}/srcpkgcache.bin",
            "Dir::Log": f"{r}/log", "APT::Architecture": self.cfg.arch,
            "APT::Architectures": self.cfg.arch, "Acquire::Languages": "none",
            "Acquire::Retries": str(self.cfg.apt.retries), "Debug::NoLocking": "1",
        }
        if self.cfg.apt.proxy:
            options["Acquire::http::Proxy"] = self.cfg.apt.proxy
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]

    def _prepare(self) -> None:
        for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                    "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "resolved"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        lines = [line.replace("deb ", f"deb [signed-by={KEYRING}] ", 1) for line in apt_sources(self.cfg)]
        lines += extra_repo_lines(self.cfg)
        (self.root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")

    def update(self) -> None:
        """Fetch the indexes (cheap when unchanged); offline, fall back to the last ones."""
        if self.updated:
            return
        self._prepare()
        try:
            run(["apt-get", "-q", *self.options(), "update"])
        except CommandError as exc:
            if not list((self.root / "var/lib/apt/lists").glob("*_InRelease")):
                raise EWindowError(f"cannot read the package lists from {self.cfg.apt.mirror}: {exc}",
                                   hint="check the network or apt.mirror / apt.proxy") from None
            log.warning("warning: mirror unreachable (%s); planning with the package lists "
                        "fetched before", exc)
        self.updated = True

    def lists_digest(self) -> str:
        h = hashlib.sha256()
        for index in sorted((self.root / "var/lib/apt/lists").glob("*_InRelease")):
            h.update(index.name.encode() + b"\0" + index.read_bytes())
        return h.hexdigest()

    def mirror_debs(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], MirrorDeb]:
        """The URL, size and sha256 of each (package, version) in today's indexes; a version
        the mirror no longer has is simply missing from the answer."""
        if not pairs:
            return {}
        self.update()
        # apt-get prints every .deb it can find and exits 100 if any is missing.
        output = run(["apt-get", "-q", *self.options(), "--print-uris", "download",
                      *(f"{name}={version}" for name, version in pairs)], capture=True, ok_codes=(0, 100))
        return parse_download_uris(output)

    def resolve(self, packages: Sequence[str], *, minbase: bool) -> Resolution:
        self.update()
        lists = self.lists_digest()
        request = [*(MINBASE if minbase else ()), *packages]
        memo_key = hashlib.sha256(json.dumps([lists, request]).encode()).hexdigest()
        memo = self.root / "resolved" / f"{memo_key}.json"
        if memo.exists():
            return Resolution(tuple((p, v) for p, v in json.loads(memo.read_text())), lists)
        try:
            output = run(["apt-get", "-q", *self.options(), "--simulate", "--no-install-recommends",
                          "install", *request], capture=True)
        except CommandError as exc:
            raise EWindowError(f"apt cannot install the requested packages: {exc}",
                               hint="check the package names in the stages and extra_packages") from None
        versions = parse_simulation(output)
        tmp = memo.with_suffix(".tmp")
        tmp.write_text(json.dumps(versions))
        tmp.replace(memo)
        return Resolution(versions, lists)
