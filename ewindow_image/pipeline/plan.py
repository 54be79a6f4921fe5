# SPDX-License-Identifier: MIT
"""``build.py plan``: what a build would do, and why. Changes nothing in out/ or the stage
cache (it refreshes the apt indexes under the cache, as a build would)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import EWindowError
from ..image.artifacts import ArtifactPaths
from ..image.manifest import changed, load_versions
from .cache import StageCache
from .driver import (
    PlannedStage,
    RepoPaths,
    artifact_paths,
    artifacts_current,
    package_changes_since,
    plan,
    read_build_info,
)
from .epoch import release_epoch

MAX_REASONS = 6


@dataclass(frozen=True)
class StagePlan:
    name: str
    description: str
    key: str
    cached: bool
    reasons: tuple[str, ...]


def diff_inputs(old: dict[str, str], new: dict[str, str], requested: tuple[str, ...] = ()) -> list[str]:
    """Human-readable differences: "package tinc added", "overlays/…/hostname.j2 changed".
    Files and settings first, then the packages the stage asks for, then their dependencies."""
    wanted = {f"package {name}" for name in requested}

    def order(name: str) -> tuple[int, str]:
        if not name.startswith("package "):
            return (0, name)
        return (1 if name in wanted else 2, name)

    reasons = []
    for name, before, after in changed(old, new, order):
        if before is None:
            reasons.append(f"{name} added")
        elif after is None:
            reasons.append(f"{name} removed")
        elif name.startswith("package "):
            reasons.append(f"{name} {before} → {after}")  # package inputs are versions
        else:
            reasons.append(f"{name} changed")
    return reasons


def explain(planned: list[PlannedStage], cache: StageCache,
            previous: dict[str, Any] | None) -> list[StagePlan]:
    previous_keys = {s["name"]: s["key"] for s in (previous or {}).get("stages", [])}
    resume_at = next((i + 1 for i in range(len(planned) - 1, -1, -1) if cache.has(planned[i].key)), 0)
    plans = []
    for index, item in enumerate(planned):
        name = item.stage.name
        if index < resume_at:
            plans.append(StagePlan(name, item.stage.description, item.key, True, ()))
            continue
        reasons: list[str] = []
        old_key = previous_keys.get(name)
        if index > resume_at:
            reasons.append(f"follows {planned[index - 1].stage.name}, which rebuilds")
        elif old_key and cache.has(old_key):
            changed = diff_inputs(cache.metadata(old_key).get("inputs", {}), item.inputs,
                                  item.stage.packages)
            reasons += changed[:MAX_REASONS]
            if len(changed) > MAX_REASONS:
                reasons.append(f"and {len(changed) - MAX_REASONS} more")
            if not changed:
                reasons.append("an earlier stage changed")
        elif old_key:
            reasons.append("the last build's result is no longer in the cache")
        else:
            reasons.append("not built before")
        plans.append(StagePlan(name, item.stage.description, item.key, False, tuple(reasons)))
    return plans


def describe(cfg: Config, repo: RepoPaths, cache: StageCache, out_dir: Path,
             manifest: Path | None = None) -> list[str]:
    paths: ArtifactPaths = artifact_paths(cfg, out_dir)
    if manifest is not None and not os.path.lexists(manifest):
        raise EWindowError(f"{manifest}: no such manifest",
                           hint="a NAME.manifest file from out/ or a release")
    if manifest is not None:
        load_versions(manifest)  # a file that is no manifest is said before the plan's work
    build_plan = plan(cfg, repo, cache)
    planned = build_plan.stages
    previous = read_build_info(paths)
    plans = explain(planned, cache, previous)
    lines = [f"{cfg.suite} {cfg.arch} image, cache {cache.root}", ""]
    for package in build_plan.packages:
        state = "cached" if package.cached else "build"
        lines.append(f"  {'package ' + package.recipe.name:<26} {state:<8} {package.recipe.deb_version} "
                     f"for {package.target.label}, from source ({package.recipe.source.commit[:12]})")
        if not package.cached:
            lines += [f"  {'':<26} {'':<8} - {reason}" for reason in
                      build_plan.sources.reasons(package)[:MAX_REASONS]]
    for own in build_plan.own:
        state = "cached" if own.cached else "build"
        lines.append(f"  {'package ' + own.package.name:<26} {state:<8} {own.version}, from this checkout")
        if not own.cached:
            lines += [f"  {'':<26} {'':<8} - {reason}" for reason in
                      build_plan.checkout.reasons(own)[:MAX_REASONS]]
    for p in plans:
        state = "cached" if p.cached else "rebuild"
        lines.append(f"  {p.name:<14} {state:<8} {p.description}")
        lines += [f"  {'':<14} {'':<8} - {reason}" for reason in p.reasons]
    against = manifest or paths.manifest
    changes = package_changes_since(against, build_plan)
    if changes:
        lines += ["", f"packages the mirror serves today in other versions than {against}:"]
        lines += [f"  {change}" for change in changes]
    elif manifest is not None:
        lines += ["", f"the mirror serves the package versions of {against}"]
    lines.append("")
    epoch = release_epoch(cfg, repo.root)
    if artifacts_current(cfg, paths, planned, previous, epoch.seconds):
        lines.append(f"nothing to rebuild: the artifacts in {out_dir} are up to date")
    else:
        if all(p.cached for p in plans):
            lines.append("nothing to rebuild; the image is assembled again from the cached tree")
        lines.append("artifacts to write:")
        lines += [f"  {a}" for a in paths.all_for(cfg.image.compression) + [paths.sums]]
    return lines
