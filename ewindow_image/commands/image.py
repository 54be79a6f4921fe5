# SPDX-License-Identifier: MIT
"""The image's commands: build, config, plan, packages, cache, verify-repro."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, dump_config
from ..errors import ConfigError, EWindowError
from ..log import add_log_file, log
from ..pipeline.cache import StageCache
from .common import (
    REPO_ROOT,
    cache_option,
    command,
    config_options,
    debug_option,
    load,
    out_option,
    stage_cache,
)


def add_commands(sub: Any) -> None:
    build = command(sub, "build", "build the image and its artifacts",
                    "Needs root (mmdebstrap, loop-free image assembly, qemu-user for arm64). Writes\n"
                    "OUT/<name>-<suite>-arm64.img, its compressed forms, .bmap, manifest, build-info\n"
                    "and SHA256SUMS, and a log under OUT/logs; reuses finished stages from the cache.",
                    cmd_build, isolated=True)
    config_options(build)
    out_option(build)
    cache_option(build)
    build.add_argument("--no-cache", action="store_true", help="rebuild every stage")

    config = command(sub, "config", "print the resolved config",
                     "Prints the merged configuration as YAML, secrets shown as <secret>. Changes nothing.",
                     cmd_config)
    config_options(config)

    plan = command(sub, "plan", "show which stages would rebuild and why",
                   "Resolves the config and the stage keys and says which stages the cache holds,\n"
                   "and which packages the mirror now serves in other versions than the last image's\n"
                   "manifest (or --manifest FILE, an earlier release's). Changes nothing.",
                   cmd_plan, isolated=True)
    config_options(plan)
    out_option(plan)
    cache_option(plan)
    plan.add_argument("--manifest", type=Path, metavar="FILE",
                      help="compare the package versions with this manifest (default: the one in --out)")

    pkgs = command(sub, "packages", "build packages/ (PeerVPN, cjdns, the window's own code) as .debs",
                   "Source packages: fetches the pinned upstream sources (mirrors first), checks their\n"
                   "hashes, builds with Debian's native or cross compiler. The window's own code\n"
                   "(ewindow-firstboot, ewindow-agent): from this checkout, versioned by its git history.\n"
                   "Copies the .debs into DIR, e.g. for a hub. Writes DIR and the package cache.",
                   cmd_packages, isolated=True)
    config_options(pkgs)
    pkgs.add_argument("--arch", default=None, choices=["amd64", "arm64"],
                      help="target architecture (default: this machine's)")
    pkgs.add_argument("--suite", default=None,
                      help="Debian release to link against (default: this machine's for its own "
                           "architecture, the image's suite otherwise)")
    pkgs.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the .debs go")
    cache_option(pkgs)
    pkgs.add_argument("names", nargs="*", help="packages to build (default: all in packages/)")

    cache = command(sub, "cache", "list or prune the cache",
                    "list: every stage snapshot with its size and last use. prune: delete snapshots\n"
                    "unused for --max-age days, or the least recently used beyond --max-size, or --all.",
                    cmd_cache)
    cache.add_argument("action", choices=["list", "prune"], help="list, or prune (deletes snapshots)")
    cache_option(cache)
    cache.add_argument("--max-age", type=float, metavar="DAYS", help="prune: unused longer than this")
    cache.add_argument("--max-size", metavar="SIZE", help="prune: keep at most this much (e.g. 20G)")
    cache.add_argument("--all", action="store_true", help="prune: everything")
    debug_option(cache)

    repro = command(sub, "verify-repro", "build the image twice and compare the bytes",
                    "Builds once with the normal cache, then again with a cache of its own that shares\n"
                    "only the downloads and the base stage (--share) and with its commands' clock moved\n"
                    "ahead (--clock-ahead), and compares every artifact by sha256. With --cold the\n"
                    "second build shares nothing but downloaded files. On a difference, names the\n"
                    "packages and the files inside the partitions that differ.\n"
                    "Needs root, like build. Writes DIR (default OUT/verify-repro). Exit status 1 when\n"
                    "the two builds differ.", cmd_verify_repro, isolated=True)
    config_options(repro)
    out_option(repro)
    cache_option(repro)
    repro.add_argument("--work", type=Path, default=None, metavar="DIR",
                       help="the two builds' artifacts and the second cache (default OUT/verify-repro)")
    shared = repro.add_mutually_exclusive_group()
    shared.add_argument("--share", default="00-base", metavar="STAGES",
                        help="comma-separated stages the second build takes from the cache "
                        "(default 00-base; '' rebuilds everything)")
    shared.add_argument("--cold", action="store_true",
                        help="the second build shares no stage and no package build, only "
                        "downloaded files: the whole chain is compared")
    repro.add_argument("--clock-ahead", type=int, default=3, metavar="DAYS",
                       help="the second build's commands see the wall clock this many days later "
                       "(libfaketime; default 3; 0 = not moved)")


def cmd_config(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_config(load(args)))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..log import terminal_safe
    from ..pipeline.driver import RepoPaths
    from ..pipeline.plan import describe

    cfg = load(args)
    lines = describe(cfg, RepoPaths(REPO_ROOT), stage_cache(args), args.out, manifest=args.manifest)
    print("\n".join(terminal_safe(line) for line in lines))  # a file name may hold escapes
    return 0


def cmd_packages(args: argparse.Namespace) -> int:
    import shutil

    from ..packages.checkout import CheckoutPackages
    from ..packages.service import SourcePackages
    from ..packages.toolchain import Target, host_arch, host_suite

    cfg = load(args)
    arch = args.arch or host_arch()
    suite = args.suite or (host_suite() if arch == host_arch() else cfg.suite.value)
    try:
        target = Target(arch, suite)
    except EWindowError as exc:
        raise ConfigError("--arch/--suite", "", str(exc)) from None
    cache = stage_cache(args).root
    sources = SourcePackages(cfg, REPO_ROOT / "packages", cache)
    checkout = CheckoutPackages(REPO_ROOT, REPO_ROOT / "packages", cache)
    known = sorted([*sources.recipes, *checkout.packages])
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise ConfigError("packages", "", f"no package {', '.join(unknown)} in packages/ "
                          f"({', '.join(known)})")
    names = args.names or known
    args.out.mkdir(parents=True, exist_ok=True)
    debs = [sources.ensure(p) for p in sources.plan([n for n in names if n in sources.recipes], target)]
    debs += [checkout.ensure(p) for p in checkout.plan([n for n in names if n in checkout.packages])]
    for deb in debs:
        shutil.copyfile(deb, args.out / deb.name)
        print(args.out / deb.name)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ..config import parse_size
    from ..pipeline.cache import select_prunable
    from ..pipeline.lock import exclusive

    cache = stage_cache(args)
    entries = cache.entries()
    if args.action == "list":
        print(f"{'key':<14}{'stage':<14}{'MiB':>8}  last used")
        for e in entries:
            print(f"{e.key[:12]:<14}{e.stage:<14}{e.size / 1048576:>8.0f}  "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))}")
        total_gib = sum(e.size for e in entries) / 1073741824
        print(f"{len(entries)} snapshots, {total_gib:.1f} GiB in {cache.root}")
        return 0
    if not (args.all or args.max_age is not None or args.max_size):
        raise ConfigError("cache prune", "(arguments)", "give --max-age DAYS, --max-size SIZE or --all")
    if args.max_age is not None and not 0 <= args.max_age < 1e6:
        raise ConfigError("cache prune", "--max-age", f"{args.max_age:g} is not a number of days "
                          "(0 or more)")
    try:
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError:
        raise ConfigError("cache prune", "--max-size", f"'{args.max_size}' is not a size like 20G") from None
    with exclusive(cache.root / "build.lock"):
        doomed = entries if args.all else select_prunable(entries, now=time.time(),
                                                          max_age_days=args.max_age, max_size=max_size)
        for e in doomed:
            cache.remove(e.key)
    print(f"removed {len(doomed)} snapshots ({sum(e.size for e in doomed) / 1048576:.0f} MiB)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..imagefiles import tool_path
    from ..pipeline.driver import RepoPaths, artifact_paths, build

    cfg = load(args)
    hostdeps.require_root("building an image")
    hostdeps.require_tools(hostdeps.build_tools(signing=bool(cfg.release.signing_key)))
    tool_path(artifact_paths(cfg, args.out).image)  # mtools will write into it: said before the build
    cache = stage_cache(args)
    log_file = args.out / "logs" / f"build-{time.strftime('%Y%m%d-%H%M%S')}.log"
    add_log_file(log_file)
    log.info("ewindow-image %s: %s %s image, log in %s", __version__, cfg.suite, cfg.arch, log_file)
    if not cfg.admin.authorized_keys:
        log.warning("warning: admin.authorized_keys is empty: nobody can log in over SSH "
                    "until a key is added (site file, or personalise at flashing)")
    hostdeps.ensure_binfmt()
    start = time.monotonic()
    result = build(cfg, RepoPaths(REPO_ROOT), cache, args.out, use_cache=not args.no_cache)
    limit_cache(cache, cfg)
    if result.nothing_to_do:
        return 0
    produced = result.artifacts.all_for(cfg.image.compression) + [result.artifacts.sums]
    print_summary(result.timings, produced, time.monotonic() - start, result.artifacts.image)
    return 0


def limit_cache(cache: StageCache, cfg: Config) -> None:
    from ..config import parse_size
    from ..pipeline.cache import enforce_limit
    from ..pipeline.lock import exclusive

    if not cfg.build.cache_max_size:
        return
    with exclusive(cache.root / "build.lock"):
        doomed = enforce_limit(cache, parse_size(cfg.build.cache_max_size))
    if doomed:
        log.info("cache: removed %d least recently used snapshots (%.1f GiB) to stay within %s",
                 len(doomed), sum(e.size for e in doomed) / 2**30, cfg.build.cache_max_size)


def print_summary(timings: dict[str, float], artifacts: list[Path], total: float,
                  image: Path) -> None:
    lines = ["", f"{'step':<34}{'seconds':>9}"]
    lines += [f"{name:<34}{seconds:>9.1f}" for name, seconds in timings.items()]
    lines.append(f"{'total':<34}{total:>9.1f}")
    lines += ["", f"{'artifact':<44}{'MiB':>9}"]
    lines += [f"{p.name:<44}{p.stat().st_size / 1048576:>9.1f}" for p in artifacts]
    lines += ["", f"image: {image}"]
    log.info("\n".join(lines))


def cmd_verify_repro(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..pipeline.driver import RepoPaths
    from ..pipeline.repro import report, verify

    cfg = load(args)
    hostdeps.require_root("building an image")
    hostdeps.require_tools(hostdeps.build_tools(signing=bool(cfg.release.signing_key)))
    share = () if args.cold else tuple(s for s in args.share.split(",") if s)
    stages = {p.name for p in (REPO_ROOT / "stages").iterdir() if p.is_dir()}
    unknown = [s for s in share if s not in stages]
    if unknown:
        raise ConfigError("verify-repro", "--share",
                          f"no stage {unknown[0]!r} (stages/: {', '.join(sorted(stages))})")
    if not 0 <= args.clock_ahead <= 3650:
        raise ConfigError("verify-repro", "--clock-ahead", f"{args.clock_ahead} is outside 0..3650 days")
    work = args.work or args.out / "verify-repro"
    add_log_file(work / f"verify-repro-{time.strftime('%Y%m%d-%H%M%S')}.log")
    hostdeps.ensure_binfmt()
    result = verify(cfg, RepoPaths(REPO_ROOT), stage_cache(args), work, share,
                    clock_ahead_days=args.clock_ahead, cold=args.cold)
    report(result)
    if not result.same:
        raise EWindowError("the two builds differ: not reproducible (the files above)",
                           hint="diffoscope shows how; README \"Reproducing an image\"")
    log.info("reproducible: both builds gave the same %d artifacts (%s)", len(result.artifacts), work)
    return 0
