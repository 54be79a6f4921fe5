# SPDX-License-Identifier: MIT
"""Command line: ``build.py COMMAND [-c site.yaml …] [--set key=value …]``.

build, plan, config, cache: the image. packages: PeerVPN and cjdns from source (.debs for
hubs). personalise, flash: one card. identity, hosts, network init: the fleet. boot-test: qemu."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cache import StageCache, default_cache_dir
from .config import Config, ConfigLayers, dump_config, load_config
from .errors import ConfigError, EWindowError
from .log import add_log_file, log, setup_logging

REPO_ROOT = Path(__file__).resolve().parent.parent


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, metavar="SITE.yaml", action="append", default=[],
                        help="site config layered over the built-in defaults (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one key, e.g. --set suite=bookworm")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command")
    parser.add_argument("--debug", action="store_true", help="tracebacks on errors")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ewindow-image {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="build the image and its artifacts")
    _common(build)
    build.add_argument("--out", type=Path, default=REPO_ROOT / "out", help="artifact folder")
    build.add_argument("--cache-dir", type=Path, default=None,
                       help=f"cache folder (default {default_cache_dir()})")
    build.add_argument("--no-cache", action="store_true", help="rebuild every stage")

    config = sub.add_parser("config", help="print the resolved config")
    _common(config)

    plan = sub.add_parser("plan", help="show which stages would rebuild and why; changes nothing")
    _common(plan)
    plan.add_argument("--out", type=Path, default=REPO_ROOT / "out", help="artifact folder")
    plan.add_argument("--cache-dir", type=Path, default=None)

    pkgs = sub.add_parser("packages", help="build the source packages (PeerVPN, cjdns) as .debs, e.g. "
                                           "for a hub; writes DIR/*.deb")
    _common(pkgs)
    pkgs.add_argument("--arch", default=None, help="amd64 or arm64 (default: this machine's)")
    pkgs.add_argument("--suite", default=None,
                      help="Debian release to link against (default: this machine's for its own "
                           "architecture, the image's suite otherwise)")
    pkgs.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the .debs go")
    pkgs.add_argument("--cache-dir", type=Path, default=None)
    pkgs.add_argument("names", nargs="*", help="recipes to build (default: all in packages/)")

    cache = sub.add_parser("cache", help="list or prune the stage cache")
    cache.add_argument("action", choices=["list", "prune"])
    cache.add_argument("--cache-dir", type=Path, default=None)
    cache.add_argument("--max-age", type=float, metavar="DAYS", help="prune: unused longer than this")
    cache.add_argument("--max-size", metavar="SIZE", help="prune: keep at most this much (e.g. 20G)")
    cache.add_argument("--all", action="store_true", help="prune: everything")
    cache.add_argument("--debug", action="store_true", help="tracebacks on errors")

    ident = sub.add_parser("identity", help="a window's identity from its MAC or serial, as JSON")
    source = ident.add_mutually_exclusive_group(required=True)
    source.add_argument("--mac", help="the window's base MAC (its on-board Ethernet)")
    source.add_argument("--serial", help="the Pi's serial number (Pi 1–3 MAC rule)")
    ident.add_argument("--prefix", default=None, help="the /64 for the ULA (default fde1:c0fe::/64)")
    ident.add_argument("--debug", action="store_true", help="tracebacks on errors")

    pers = sub.add_parser("personalise", help="write one card's deployment settings into an image or card")
    _common(pers)
    pers.add_argument("target", type=Path, help="an image file or an SD card (/dev/sdX)")
    pers.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")

    flash = sub.add_parser("flash", help="write the image to an SD card with bmaptool, then personalise it")
    _common(flash)
    flash.add_argument("device", type=Path, help="the whole card, e.g. /dev/sdb or /dev/mmcblk0")
    flash.add_argument("--image", type=Path, default=None, help="image (default: the built one)")
    flash.add_argument("--out", type=Path, default=REPO_ROOT / "out")
    flash.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")
    flash.add_argument("--force", action="store_true", help="also write a non-removable or mounted disk")

    network = sub.add_parser("network", help="a deployment's secrets: network init DIR")
    network.add_argument("action", choices=["init"])
    network.add_argument("directory", type=Path,
                         help="a folder outside the checkout, e.g. ~/ewindow-network")
    network.add_argument("--debug", action="store_true", help="tracebacks on errors")

    hosts = sub.add_parser("hosts", help="hosts file or DNS zone lines for the fleet")
    _common(hosts)
    hosts.add_argument("inputs", type=Path, nargs="+",
                       help="identity.json files from the cards, or inventory YAML files of MACs/serials")
    hosts.add_argument("--format", choices=["hosts", "zone"], default="hosts")
    hosts.add_argument("--tinc-hosts", type=Path, metavar="DIR",
                       help="also write each window's tinc hosts/ file into DIR (for the hubs)")

    boot = sub.add_parser("boot-test", help="boot the image under qemu and check it came up")
    _common(boot)
    boot.add_argument("image", nargs="?", type=Path, help="image (default: the built one)")
    boot.add_argument("--out", type=Path, default=REPO_ROOT / "out")
    boot.add_argument("--machine", choices=["virt", "raspi3b", "all"], default="all")
    boot.add_argument("--timeout", type=int, default=300, help="seconds per boot")
    return parser


def load(args: argparse.Namespace) -> Config:
    return load_config(ConfigLayers(tuple(args.config), tuple(args.overrides)))


def cmd_config(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_config(load(args)))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline import RepoPaths
    from .plan import describe

    cfg = load(args)
    cache = StageCache(args.cache_dir or default_cache_dir())
    print("\n".join(describe(cfg, RepoPaths(REPO_ROOT), cache, args.out)))
    return 0


def cmd_packages(args: argparse.Namespace) -> int:
    import shutil

    from .packages.service import SourcePackages
    from .packages.toolchain import Target, host_arch, host_suite

    cfg = load(args)
    arch = args.arch or host_arch()
    suite = args.suite or (host_suite() if arch == host_arch() else cfg.suite.value)
    try:
        target = Target(arch, suite)
    except EWindowError as exc:
        raise ConfigError("--arch/--suite", "", str(exc)) from None
    cache = StageCache(args.cache_dir or default_cache_dir())
    sources = SourcePackages(cfg, REPO_ROOT / "packages", cache.root)
    unknown = [n for n in args.names if n not in sources.recipes]
    if unknown:
        raise ConfigError("packages", "", f"no recipe for {', '.join(unknown)} "
                          f"(packages/: {', '.join(sorted(sources.recipes))})")
    args.out.mkdir(parents=True, exist_ok=True)
    for planned in sources.plan(args.names or sorted(sources.recipes), target):
        deb = sources.ensure(planned)
        shutil.copyfile(deb, args.out / deb.name)
        print(args.out / deb.name)
    return 0


def cmd_identity(args: argparse.Namespace) -> int:
    from firstboot.identity import DEFAULT_PREFIX, IdentityError, derive, mac_from_serial, normalise_serial

    prefix = args.prefix or DEFAULT_PREFIX
    try:
        derive("", "b8:27:eb:00:00:00", prefix=prefix)
    except ValueError as exc:  # IdentityError, or ipaddress's own for a malformed prefix
        raise ConfigError("--prefix", "", str(exc)) from None
    try:
        if args.mac:
            identity = derive("", args.mac, prefix=prefix)
        else:
            serial = normalise_serial(args.serial)
            identity = derive(serial, mac_from_serial(serial), prefix=prefix)
    except IdentityError as exc:
        raise ConfigError("--mac" if args.mac else "--serial", "", str(exc)) from None
    print(identity.to_json())
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import parse_size, select_prunable

    cache = StageCache(args.cache_dir or default_cache_dir())
    entries = cache.entries()
    now = time.time()
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
    try:
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError:
        raise ConfigError("cache prune", "--max-size", f"'{args.max_size}' is not a size like 20G") from None
    from .pipeline import exclusive

    with exclusive(cache.root / "build.lock"):
        doomed = entries if args.all else select_prunable(entries, now=now, max_age_days=args.max_age,
                                                          max_size=max_size)
        for e in doomed:
            cache.remove(e.key)
    print(f"removed {len(doomed)} snapshots ({sum(e.size for e in doomed) / 1048576:.0f} MiB)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .pipeline import RepoPaths, build

    cfg = load(args)
    hostdeps.require_root("building an image")
    hostdeps.require_tools(hostdeps.BUILD_TOOLS)
    cache = StageCache(args.cache_dir or default_cache_dir())
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
    from .cache import enforce_limit, parse_size
    from .pipeline import exclusive

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


def cmd_boot_test(args: argparse.Namespace) -> int:
    from . import boottest, hostdeps
    from .pipeline import artifact_paths

    cfg = load(args)
    hostdeps.require_tools(hostdeps.BOOT_TEST_TOOLS)
    image = args.image or artifact_paths(cfg, args.out).image
    if not image.is_file():
        raise EWindowError(f"{image}: no such image", hint="build it first: make image")
    machines = ["virt", "raspi3b"] if args.machine == "all" else [args.machine]
    for machine in machines:
        result = boottest.boot(image, boottest.BootSpec(machine=machine, timeout=args.timeout))
        log.info("boot test %s: passed in %.0f s (%s)", machine, result.seconds, result.report)
    return 0


def cmd_personalise(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .personalise import deployment, personalise

    cfg = load(args)
    hostdeps.require_tools(hostdeps.PERSONALISE_TOOLS)
    if not args.target.exists():
        raise EWindowError(f"{args.target}: no such image or device")
    personalise(args.target, deployment(cfg, args.hostname))
    log.info("personalised %s: %d SSH keys, %d Wi-Fi networks, VPN %s%s", args.target,
             len(cfg.admin.authorized_keys), len(cfg.wifi.networks), ", ".join(cfg.vpn.backends) or "none",
             f", host name {args.hostname}" if args.hostname else "")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .flash import flash
    from .personalise import deployment, personalise
    from .pipeline import artifact_paths

    cfg = load(args)
    hostdeps.require_root("writing an SD card")
    hostdeps.require_tools(hostdeps.FLASH_TOOLS)
    image = args.image or artifact_paths(cfg, args.out).image
    data = deployment(cfg, args.hostname)  # bad settings fail before the card is touched
    for warning in flash(image, args.device, force=args.force):
        log.warning("warning: --force: %s", warning)
    personalise(args.device, data)
    log.info("%s is ready: put it into the window. At first boot it writes its identity to "
             "ewindow/identity.json on the boot partition (build.py hosts reads it).", args.device)
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    from .network import init

    path, found = init(args.directory)
    print(f"created {path} (mode 0600). Add to your site.yaml:\n  secrets_file: {path}\n"
          f"A new deployment may also use its own random ULA prefix (RFC 4193):\n"
          f"  identity:\n    prefix: \"{found.prefix}\"")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from .registry import collect, hosts_lines, tinc_host_files, write_files, zone_lines

    cfg = load(args)
    hosts = collect(list(args.inputs), cfg.identity)  # every card's file checked before any write
    lines = (hosts_lines if args.format == "hosts" else zone_lines)(hosts, cfg.identity.domain)
    if args.tinc_hosts:
        for path in write_files(args.tinc_hosts, tinc_host_files(hosts, cfg.vpn.tinc.port)):
            log.info("wrote %s", path)
    print("\n".join(lines))
    return 0


COMMANDS = {"build": cmd_build, "config": cmd_config, "plan": cmd_plan, "cache": cmd_cache,
            "packages": cmd_packages,
            "identity": cmd_identity, "boot-test": cmd_boot_test, "personalise": cmd_personalise,
            "flash": cmd_flash, "network": cmd_network, "hosts": cmd_hosts}


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # `kill` gets the same orderly stop as Ctrl-C: running commands are stopped, no
    # unfinished stage or artifact is kept under a final name.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except EWindowError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
