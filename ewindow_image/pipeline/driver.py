# SPDX-License-Identifier: MIT
"""config → stages → rootfs → image → artifacts."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, process_tree
from ..apt.resolver import AptResolver
from ..config import Config, template_context
from ..errors import EWindowError
from ..image.artifacts import ArtifactPaths
from ..image.assemble import ReleaseInputs, assemble_image, publish_artifacts
from ..image.manifest import load_versions, package_changes
from ..log import log, step
from ..packages import versioning
from ..packages.checkout import CheckoutPackages, PlannedCheckoutPackage
from ..packages.service import PlannedPackage, SourcePackages
from ..runner import run
from ..trees import remove_tree
from .cache import StageCache
from .early import EarlyPackages
from .epoch import ReleaseEpoch, release_epoch
from .golden_lint import lint_tree
from .inventory import installed_packages
from .localdebs import LocalDeb, from_folder
from .lock import exclusive, wait_for_strays
from .stages.definition import Stage, load_stages
from .stages.run import StageContext, code_digest, run_stage, stage_inputs, stage_key


@dataclass(frozen=True)
class RepoPaths:
    """Where the project's stages and overlays are (the checkout)."""

    root: Path

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def overlays(self) -> Path:
        return self.root / "overlays"

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    def copy_to(self, target: Path) -> RepoPaths:
        """Copy what a build reads (the builder, stages, overlays) to ``target``; tests and
        benchmarks edit the copy, never the checkout."""
        target.mkdir(parents=True)
        shutil.copy2(self.root / "build.py", target / "build.py")
        for name in ("ewindow_image", "firstboot", "hardware", "updates", "stages", "overlays",
                     "packages"):
            if not (self.root / name).is_dir():
                continue
            shutil.copytree(self.root / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        # the copy has no .git: it keeps the versions the checkout's history gives its packages
        versioning.write_stamp(target, CheckoutPackages(self.root, self.packages, target).versions())
        return RepoPaths(target)


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    key: str
    inputs: dict[str, str]


@dataclass
class StageReport:
    name: str
    key: str
    seconds: float
    cached: bool
    did: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    artifacts: ArtifactPaths
    stages: list[StageReport]
    timings: dict[str, float]
    info: dict[str, Any]
    nothing_to_do: bool = False


def artifact_paths(cfg: Config, out_dir: Path) -> ArtifactPaths:
    return ArtifactPaths(out_dir, f"{cfg.image.name}-{cfg.suite}-{cfg.arch}")


@dataclass(frozen=True)
class BuildPlan:
    stages: list[PlannedStage]
    packages: list[PlannedPackage]  # built from source for this image
    ctx: StageContext
    sources: SourcePackages
    own: list[PlannedCheckoutPackage]  # the window's code, built from this checkout
    checkout: CheckoutPackages

    def ensure(self, name: str) -> None:
        """The .deb of ``name`` if this build makes it (from source or the checkout), in the
        cache: built now unless it is there."""
        for package in self.packages:
            if package.recipe.name == name:
                self.sources.ensure(package)
        for own in self.own:
            if own.package.name == name:
                self.checkout.ensure(own)


def stage_context(cfg: Config, repo: RepoPaths, cache: StageCache) -> StageContext:
    return StageContext(cfg=cfg, repo_dir=repo.root, overlays_dir=repo.overlays, deb_cache=cache.debs,
                        template_context=template_context(cfg), apt=AptResolver(cfg, cache.root))


def plan(cfg: Config, repo: RepoPaths, cache: StageCache) -> BuildPlan:
    """Load the stages and compute each one's key, and the keys of the source packages they
    install. Reads files, and asks the mirror which package versions the stages would install
    and the packages would build against (apt indexes kept in the cache); builds nothing."""
    ctx = stage_context(cfg, repo, cache)
    stages = load_stages(repo.stages, ctx.template_context)
    wanted = list(dict.fromkeys(p for stage in stages for p in stage.packages))
    admin = from_folder(cfg, wanted)
    sources = SourcePackages(cfg, repo.packages, cache.root)
    packages = sources.plan([p for p in wanted if p in sources.recipes and p not in admin],
                            sources.image_target(), shared_resolver=ctx.apt)
    checkout = CheckoutPackages(repo.root, repo.packages, cache.root)
    own = checkout.plan([p for p in wanted if p in checkout.packages and p not in admin])
    built = {p.recipe.name: LocalDeb(p.deb, f"built from source: {p.deb.name} {p.key[:16]}")
             for p in packages}
    built.update({p.package.name: LocalDeb(p.deb, f"built from this checkout: {p.deb.name} {p.key[:16]}")
                  for p in own})
    ctx = dataclasses.replace(ctx, local_debs={**built, **admin})
    planned = []
    previous = f"ewindow-image {__version__}"
    for stage in stages:
        inputs = stage_inputs(stage, ctx)
        key = stage_key(previous, inputs)
        planned.append(PlannedStage(stage, key, inputs))
        previous = key
    return BuildPlan(planned, packages, ctx, sources, own, checkout)


def build(cfg: Config, repo: RepoPaths, cache: StageCache, out_dir: Path, *,
          use_cache: bool = True) -> BuildResult:
    paths = artifact_paths(cfg, out_dir)
    epoch = release_epoch(cfg, repo.root)
    with exclusive(cache.root / "build.lock"):
        with step("plan"):
            build_plan = plan(cfg, repo, cache)
            planned = build_plan.stages
        previous = read_build_info(paths)
        report_package_changes(paths, build_plan)
        if use_cache and artifacts_current(cfg, paths, planned, previous, epoch.seconds):
            log.info("nothing to do: %s is up to date", paths.image)
            assert previous is not None
            return BuildResult(paths, [], {}, previous, nothing_to_do=True)
        build_plan.sources.fetch_all(build_plan.packages)
        # A killed build's processes end with it (process_tree), but one may still be
        # ending: wait for it before its tree goes.
        wait_for_strays([cache.work, *cache.unfinished()])
        for old in sorted(cache.work.glob("*")):
            remove_tree(old)
        cache.work.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=cache.work))
        tree = work / "rootfs"

        # Source packages compile in the background from here on, those of a stage that will
        # run only: a cached 35-vpn needs none (early.py).
        running = {name for item in planned if not (use_cache and cache.has(item.key))
                   for name in item.stage.packages}
        early = EarlyPackages(build_plan.sources, [p for p in build_plan.packages
                                                   if p.recipe.name in running])
        early.start()

        def build_packages(stage: Stage) -> None:
            early.check()
            if any(p.recipe.name in stage.packages for p in early.todo):
                with step("wait for the source packages built in the background"):
                    early.wait()
            for name in stage.packages:
                build_plan.ensure(name)

        try:
            reports = run_stages(planned, build_plan.ctx, cache, tree, use_cache=use_cache,
                                 before_stage=build_packages)
            early.check()
        except BaseException:
            process_tree.stop_descendants()  # the background build's command too
            raise
        timings: dict[str, float] = {f"stage {r.name}": r.seconds for r in reports}
        with step("lint the image tree"):
            check_golden(cfg, tree)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            with step("assemble image"):
                start = time.monotonic()
                log.info("    SOURCE_DATE_EPOCH %d (%s)", epoch.seconds, epoch.source)
                layout = assemble_image(cfg, tree, work / "bootfs", paths, epoch.seconds)
                timings["assemble image"] = time.monotonic() - start
            info = build_info(cfg, repo, reports, layout_info=layout, epoch=epoch)
            info["source_packages"] = [p.pin() for p in build_plan.packages]
            info["checkout_packages"] = [p.pin() for p in build_plan.own]
            with step("write artifacts"):
                built = {p["name"]: f"built from {p['upstream']} (commit {p['commit']})"
                         for p in info["source_packages"]}
                built.update({p["name"]: "built from this checkout (ewindow-image)"
                              for p in info["checkout_packages"]})
                packages = installed_packages(tree, build_plan.ctx.apt, build_plan.ctx.local_debs,
                                              cache.debs, built)
                release = ReleaseInputs(packages, epoch.seconds, str(info["git_revision"]),
                                        f"ewindow-image-{__version__}")
                publish_artifacts(cfg, tree, paths, info, timings, release)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, SIGHUP) or failed: the half-written files go (a
            # 1.4 GB .img.partial); a complete artifact keeps its name, and without
            # build-info and SHA256SUMS the set is not taken as finished. A command still
            # running (started just as the signal came) would write them again: it goes first.
            process_tree.stop_descendants()
            for unfinished in [*out_dir.glob(f"{paths.stem}*.partial"), out_dir / "SHA256SUMS.partial"]:
                unfinished.unlink(missing_ok=True)
            raise
        remove_tree(work)
    return BuildResult(paths, reports, timings, info)


def planned_versions(build_plan: BuildPlan) -> dict[str, str]:
    """package → the version apt resolves today, for the packages the stages install from the
    mirror (the stage keys hold them); packages from .deb files are left out."""
    versions: dict[str, str] = {}
    for item in build_plan.stages:
        for name, value in item.inputs.items():
            package = name.removeprefix("package ")
            if package != name and package not in build_plan.ctx.local_debs and value != "requested":
                versions[package] = value
    return versions


def package_changes_since(manifest: Path, build_plan: BuildPlan) -> list[str]:
    """How the mirror's versions today differ from those in an earlier manifest, for the
    packages both know (a package a stage removes again is in the plan, not the manifest)."""
    if not manifest.exists() and not manifest.is_symlink():
        return []  # no earlier build
    before = load_versions(manifest)
    now = planned_versions(build_plan)
    return package_changes({n: v for n, v in before.items() if n in now},
                           {n: v for n, v in now.items() if n in before})


def report_package_changes(paths: ArtifactPaths, build_plan: BuildPlan) -> None:
    """Say which packages the mirror serves in other versions than the last build's image has,
    before building: a rebuild of one commit with other packages is another image."""
    changes = package_changes_since(paths.manifest, build_plan)
    if changes:
        shown = "; ".join(changes[:20]) + (f"; and {len(changes) - 20} more" if len(changes) > 20 else "")
        log.info("==> %d packages differ from %s: %s", len(changes), paths.manifest.name, shown)


def check_golden(cfg: Config, tree: Path) -> None:
    findings = lint_tree(tree, secrets=cfg.secret_values())
    for finding in findings:
        log.error("    %s", finding)
    if findings:
        raise EWindowError(f"the image tree fails the golden-image checks ({len(findings)} findings, "
                           "listed above); nothing was written",
                           hint="whatever identifies a window is made on it at first boot")


def read_build_info(paths: ArtifactPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.build_info.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def artifacts_current(cfg: Config, paths: ArtifactPaths, planned: list[PlannedStage],
                      previous: dict[str, Any] | None, epoch: int) -> bool:
    """The artifacts in out/ come from exactly these stage keys, config, builder and
    SOURCE_DATE_EPOCH, and are all there with the sizes recorded when they were written."""
    if previous is None or previous.get("source_date_epoch") != epoch:
        return False
    recorded = [s.get("key") for s in previous.get("stages", [])]
    if recorded != [p.key for p in planned]:
        return False
    if previous.get("config_digest") != cfg.digest() or previous.get("builder_digest") != package_digest():
        return False
    sizes = previous.get("artifacts", {})
    for artifact in paths.all_for(cfg.image.compression):
        if artifact == paths.build_info or (artifact == paths.imager_list and not cfg.image.compression):
            continue
        if artifact == paths.imager_list:  # its size is not recorded (see publish_artifacts)
            if not artifact.is_file():
                return False
            continue
        if not artifact.is_file() or sizes.get(artifact.name) != artifact.stat().st_size:
            return False
    return paths.sums.is_file()


# The code the artifacts in out/ depend on: the stages' and the image's (assembly, manifest,
# build-info), the source packages' and the config's. Not the CLI, cards, fleet or qemu code.
ARTIFACT_CODE = ("pipeline", "image", "apt", "packages", "config", "config/defaults.yaml")


def package_digest() -> str:
    """The builder code the artifacts depend on: a change there makes new artifacts."""
    return code_digest(ARTIFACT_CODE)


def run_stages(planned: list[PlannedStage], ctx: StageContext, cache: StageCache, tree: Path,
               *, use_cache: bool, before_stage: Callable[[Stage], None] = lambda stage: None
               ) -> list[StageReport]:
    reports: list[StageReport] = []
    resume_at = 0
    if use_cache:
        for index in range(len(planned) - 1, -1, -1):
            if cache.has(planned[index].key):
                resume_at = index + 1
                break
    for item in planned[:resume_at]:
        # Reusing a chain uses every stage in it: prune must not drop the base of a live chain.
        if cache.has(item.key):
            cache.touch(item.key)
        reports.append(StageReport(item.stage.name, item.key, 0.0, cached=True))
        log.info("==> stage %s: cached (%s)", item.stage.name, item.key[:12])
    if resume_at:
        with step(f"restore {planned[resume_at - 1].stage.name} from the cache"):
            cache.restore(planned[resume_at - 1].key, tree)
    else:
        remove_tree(tree)
    for item in planned[resume_at:]:
        before_stage(item.stage)
        start = time.monotonic()
        with step(f"stage {item.stage.name}: {item.stage.description}"):
            did = run_stage(item.stage, ctx, tree)
            cache.store(item.key, tree, {"stage": item.stage.name, "inputs": item.inputs,
                                         "seconds": time.monotonic() - start})
        reports.append(StageReport(item.stage.name, item.key, time.monotonic() - start,
                                   cached=False, did=did))
    return reports


def git_revision(root: Path) -> str:
    """HEAD of the checkout, ``-dirty`` with uncommitted changes; ``unknown`` outside git."""
    if not (root / ".git").exists():
        return "unknown"
    try:
        revision = run(["git", "-C", root, "rev-parse", "HEAD"], capture=True).strip()
        changes = run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                      capture=True)
    except EWindowError:  # e.g. no commit yet, or git refuses a checkout owned by another user
        return "unknown"
    return revision + ("-dirty" if changes.strip() else "")


def build_info(cfg: Config, repo: RepoPaths, reports: list[StageReport],
               layout_info: dict[str, Any], epoch: ReleaseEpoch) -> dict[str, Any]:
    """What build-info.json records: only what the image follows from, so it is the same
    for two builds of one commit. When and how fast a build ran is in its log."""
    return {
        "builder_version": __version__,
        "builder_digest": package_digest(),
        "git_revision": git_revision(repo.root),
        "config_digest": cfg.digest(),
        "config": cfg.as_dict(),
        "source_date_epoch": epoch.seconds,
        "source_date_epoch_from": epoch.source,
        "stages": [{"name": r.name, "key": r.key} for r in reports],
        "image": layout_info,
    }
