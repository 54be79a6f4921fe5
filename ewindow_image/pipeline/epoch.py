# SPDX-License-Identifier: MIT
"""The build's two clocks (https://reproducible-builds.org/specs/source-date-epoch/).

- :data:`STAGE_EPOCH`: what every stage's commands see as ``SOURCE_DATE_EPOCH`` (mmdebstrap,
  maintainer scripts, useradd, mkinitramfs). A constant, so a stage gives the same tree
  whenever it is built and the stage cache survives new commits.
- :func:`release_epoch`: the image's own time, from the environment, the config or the last
  commit. Every time in the image and its artifacts is clamped to it when the image is
  assembled (files newer than it get it; ext4 and FAT metadata get it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, EWindowError
from ..runner import run

STAGE_EPOCH = 1735689600  # 2025-01-01T00:00:00Z


@dataclass(frozen=True)
class ReleaseEpoch:
    seconds: int
    source: str  # where it came from, for the log and build-info.json


def git_commit_time_argv(root: Path) -> list[str]:
    return ["git", "--no-pager", "-C", os.fspath(root), "log", "-1", "--format=%ct"]


def release_epoch(cfg: Config, root: Path) -> ReleaseEpoch:
    """SOURCE_DATE_EPOCH from the environment, else ``build.source_date_epoch``, else the
    last commit's time, else the newest of the image's source files (a copy of the checkout
    without its .git, as the tests make)."""
    from_env = os.environ.get("SOURCE_DATE_EPOCH", "")
    if from_env:
        if not from_env.isdigit() or int(from_env) >= 2**32:
            raise ConfigError("SOURCE_DATE_EPOCH", "", f"{from_env[:20]!r} is not a time in seconds "
                              "since 1970")
        return ReleaseEpoch(int(from_env), "SOURCE_DATE_EPOCH")
    if cfg.build.source_date_epoch:
        return ReleaseEpoch(cfg.build.source_date_epoch, "build.source_date_epoch")
    if (root / ".git").exists():
        try:
            return ReleaseEpoch(int(run(git_commit_time_argv(root), capture=True).strip()), "last commit")
        except (EWindowError, ValueError):
            pass  # no commit yet, or git refuses the checkout: the file times below
    return ReleaseEpoch(max(int(path.stat().st_mtime) for path in source_files(root)),
                        "newest file of the checkout (no git)")


# What the image is made from: the stages, overlays, recipes, the window's code and the
# builder code the artifacts depend on (pipeline/driver.py ARTIFACT_CODE), not the CLI, cards,
# fleet or qemu code.
IMAGE_SOURCES = ("stages", "overlays", "packages", "firstboot", "hardware", "updates",
                 "ewindow_image/build", "ewindow_image/image", "ewindow_image/apt",
                 "ewindow_image/packages", "ewindow_image/config")


def source_files(root: Path) -> list[Path]:
    """The image's source files in the checkout, without what running the builder writes
    there (Python's __pycache__ appears the first time build.py runs)."""
    found = []
    for part in IMAGE_SOURCES:
        top = root / part
        for path in [top] if top.is_file() else top.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.append(path)
    return found
