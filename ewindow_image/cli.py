# SPDX-License-Identifier: MIT
"""Command line: ``build.py COMMAND [-c site.yaml …] [--set key=value …]``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .build.cache import StageCache, default_cache_dir
from .config import Config, ConfigLayers, dump_config, load_config
from .errors import ConfigError, EWindowError
from .log import add_log_file, log, setup_logging

REPO_ROOT = Path(__file__).resolve().parent.parent


DESCRIPTION = """\
Build and flash EWindow SD card images.

  the image:   build, plan, config, cache, packages
  one card:    personalise, flash
  the fleet:   identity, hosts, network init
  checks:      boot-test

Configuration: built-in defaults, then each -c SITE.yaml, then the secrets file it names,
then each --set KEY=VALUE (the value is YAML: --set image.compression=[xz,zstd]).
See README.md, "Config reference"."""

EXIT_CODES = """\
exit status:
  0    done
  1    a refused or failed action (a command failed, a disk was refused, a tool is missing)
  2    bad usage or bad input (a config value, a file from a card); nothing was written
  70   an internal error (a bug; --debug shows the traceback)
  130  interrupted (Ctrl-C or SIGTERM); nothing unfinished is kept"""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) instead of the usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _sub(sub: Any, name: str, summary: str, details: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{details}",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, metavar="SITE.yaml", action="append", default=[],
                        help="site config layered over the built-in defaults (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one key; the value is YAML, e.g. "
                        "--set suite=bookworm, --set 'image.compression=[xz, zstd]' (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command")
    parser.add_argument("--debug", action="store_true", help="tracebacks on errors")


def _cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help=f"stage, package and download cache (default {default_cache_dir()})")


def _out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out", metavar="DIR",
                        help="artifact folder (default out/ in the checkout)")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="build.py", description=DESCRIPTION, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ewindow-image {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    build = _sub(sub, "build", "build the image and its artifacts",
                 "Needs root (mmdebstrap, loop-free image assembly, qemu-user for arm64). Writes\n"
                 "OUT/<name>-<suite>-arm64.img, its compressed forms, .bmap, manifest, build-info\n"
                 "and SHA256SUMS, and a log under OUT/logs; reuses finished stages from the cache.")
    _common(build)
    _out(build)
    _cache_dir(build)
    build.add_argument("--no-cache", action="store_true", help="rebuild every stage")

    config = _sub(sub, "config", "print the resolved config",
                  "Prints the merged configuration as YAML, secrets shown as <secret>. Changes nothing.")
    _common(config)

    plan = _sub(sub, "plan", "show which stages would rebuild and why",
                "Resolves the config and the stage keys and says which stages the cache holds,\n"
                "and which packages the mirror now serves in other versions than the last image's\n"
                "manifest (or --manifest FILE, an earlier release's). Changes nothing.")
    _common(plan)
    _out(plan)
    _cache_dir(plan)
    plan.add_argument("--manifest", type=Path, metavar="FILE",
                      help="compare the package versions with this manifest (default: the one in --out)")

    pkgs = _sub(sub, "packages", "build the source packages (PeerVPN, cjdns) as .debs",
                "Fetches the pinned upstream sources (mirrors first), checks their hashes, builds\n"
                "with Debian's native or cross compiler, and copies the .debs into DIR, e.g. for a\n"
                "hub. Writes DIR and the package cache.")
    _common(pkgs)
    pkgs.add_argument("--arch", default=None, choices=["amd64", "arm64"],
                      help="target architecture (default: this machine's)")
    pkgs.add_argument("--suite", default=None,
                      help="Debian release to link against (default: this machine's for its own "
                           "architecture, the image's suite otherwise)")
    pkgs.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the .debs go")
    _cache_dir(pkgs)
    pkgs.add_argument("names", nargs="*", help="recipes to build (default: all in packages/)")

    cache = _sub(sub, "cache", "list or prune the cache",
                 "list: every stage snapshot with its size and last use. prune: delete snapshots\n"
                 "unused for --max-age days, or the least recently used beyond --max-size, or --all.")
    cache.add_argument("action", choices=["list", "prune"], help="list, or prune (deletes snapshots)")
    _cache_dir(cache)
    cache.add_argument("--max-age", type=float, metavar="DAYS", help="prune: unused longer than this")
    cache.add_argument("--max-size", metavar="SIZE", help="prune: keep at most this much (e.g. 20G)")
    cache.add_argument("--all", action="store_true", help="prune: everything")
    cache.add_argument("--debug", action="store_true", help="tracebacks on errors")

    ident = _sub(sub, "identity", "print a window's identity from its MAC or serial, as JSON",
                 "The host name, tap0 MAC, ULA and link-local address firstboot derives on the\n"
                 "window. Changes nothing.")
    source = ident.add_mutually_exclusive_group(required=True)
    source.add_argument("--mac", help="the window's base MAC (its on-board Ethernet)")
    source.add_argument("--serial", help="the Pi's serial number (Pi 1–3 MAC rule)")
    ident.add_argument("--prefix", default=None, help="the /64 for the ULA (default fde1:c0fe::/64)")
    ident.add_argument("--allow-global-prefix", action="store_true",
                       help="accept a --prefix outside fc00::/7 (identity.allow_global_prefix)")
    ident.add_argument("--debug", action="store_true", help="tracebacks on errors")

    pers = _sub(sub, "personalise", "write one card's deployment settings into an image or card",
                "Writes ewindow/deployment.json (SSH keys, Wi-Fi, VPN secrets) onto the FAT\n"
                "partition of TARGET with mtools; nothing is mounted. The settings are checked with\n"
                "the window's own parser first. Writing a card needs access to its device.")
    _common(pers)
    pers.add_argument("target", type=Path, help="an image file or an SD card (/dev/sdX)")
    pers.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")

    flash = _sub(sub, "flash", "overwrite a whole SD card with the image, then personalise it",
                 "ERASES EVERYTHING ON DEVICE: writes the image with bmaptool, then the card's\n"
                 "deployment settings. Needs root. Refuses the system disk, mounted disks and\n"
                 "non-removable disks unless --force.")
    _common(flash)
    flash.add_argument("device", type=Path, help="the whole card, e.g. /dev/sdb or /dev/mmcblk0")
    flash.add_argument("--image", type=Path, default=None, help="image (default: the built one)")
    _out(flash)
    flash.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")
    flash.add_argument("--force", action="store_true", help="also write a non-removable or mounted disk")

    network = _sub(sub, "network", "make a new deployment's secrets: network init DIR",
                   "Writes DIR/secrets.yaml (mode 0600) with a new PeerVPN key, and suggests a random\n"
                   "ULA prefix. A new DIR is made 0700; an existing one must be private to you.\n"
                   "Never overwrites an existing secrets.yaml.")
    network.add_argument("action", choices=["init"], help="init: make DIR/secrets.yaml")
    network.add_argument("directory", type=Path,
                         help="a folder outside the checkout, e.g. ~/ewindow-network")
    network.add_argument("--debug", action="store_true", help="tracebacks on errors")

    hosts = _sub(sub, "hosts", "print hosts file or DNS zone lines for the fleet",
                 "Reads the ewindow/identity.json files windows write to their cards, or inventory\n"
                 "YAML files of MACs/serials, checks every field, and prints one line per window.\n"
                 "With --tinc-hosts, also writes each window's tinc hosts/ file into DIR.")
    _common(hosts)
    hosts.add_argument("inputs", type=Path, nargs="+",
                       help="identity.json files from the cards, or inventory YAML files of MACs/serials")
    hosts.add_argument("--format", choices=["hosts", "zone"], default="hosts",
                       help="hosts: /etc/hosts lines; zone: AAAA records (default hosts)")
    hosts.add_argument("--tinc-hosts", type=Path, metavar="DIR",
                       help="also write each window's tinc hosts/ file into DIR (for the hubs)")

    repro = _sub(sub, "verify-repro", "build the image twice and compare the bytes",
                 "Builds once with the normal cache, then again with a cache of its own that shares\n"
                 "only the downloads and the base stage (--share) and with its commands' clock moved\n"
                 "ahead (--clock-ahead), and compares every artifact by sha256. On a difference,\n"
                 "names the packages and the files inside the partitions that differ.\n"
                 "Needs root, like build. Writes DIR (default OUT/verify-repro). Exit status 1 when\n"
                 "the two builds differ.")
    _common(repro)
    _out(repro)
    _cache_dir(repro)
    repro.add_argument("--work", type=Path, default=None, metavar="DIR",
                       help="the two builds' artifacts and the second cache (default OUT/verify-repro)")
    repro.add_argument("--share", default="00-base", metavar="STAGES",
                       help="comma-separated stages the second build takes from the cache "
                       "(default 00-base; '' rebuilds everything)")
    repro.add_argument("--clock-ahead", type=int, default=3, metavar="DAYS",
                       help="the second build's commands see the wall clock this many days later "
                       "(libfaketime; default 3; 0 = not moved)")

    boot = _sub(sub, "boot-test", "boot the image under qemu and check it came up",
                "Boots a sparse copy of the image (the image is not changed) on qemu's\n"
                "virt and raspi3b machines and waits for the boot report.")
    _common(boot)
    boot.add_argument("image", nargs="?", type=Path, help="image (default: the built one)")
    _out(boot)
    boot.add_argument("--machine", choices=["virt", "raspi3b", "all"], default="all",
                      help="which machine to boot (default all)")
    boot.add_argument("--timeout", type=int, default=300, help="seconds per boot")
    return parser


def load(args: argparse.Namespace) -> Config:
    return load_config(ConfigLayers(tuple(args.config), tuple(args.overrides)))


def cmd_config(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_config(load(args)))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .build.pipeline import RepoPaths
    from .build.plan import describe

    cfg = load(args)
    cache = StageCache(args.cache_dir or default_cache_dir())
    print("\n".join(describe(cfg, RepoPaths(REPO_ROOT), cache, args.out, manifest=args.manifest)))
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
    from firstboot import checks
    from firstboot.identity import DEFAULT_PREFIX, IdentityError, derive, mac_from_serial, normalise_serial

    prefix = args.prefix or DEFAULT_PREFIX
    try:
        checks.identity_prefix(prefix, allow_global=args.allow_global_prefix)
    except checks.InvalidValue as exc:
        raise ConfigError("--prefix", "", str(exc)) from None
    try:
        if args.mac is not None:
            identity = derive("", args.mac, prefix=prefix)
        else:
            serial = normalise_serial(args.serial)
            identity = derive(serial, mac_from_serial(serial), prefix=prefix)
    except IdentityError as exc:
        raise ConfigError("--mac" if args.mac is not None else "--serial", "", str(exc)) from None
    print(identity.to_json())
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .build.cache import select_prunable
    from .config import parse_size

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
    if args.max_age is not None and not 0 <= args.max_age < 1e6:
        raise ConfigError("cache prune", "--max-age", f"{args.max_age:g} is not a number of days "
                          "(0 or more)")
    try:
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError:
        raise ConfigError("cache prune", "--max-size", f"'{args.max_size}' is not a size like 20G") from None
    from .build.pipeline import exclusive

    with exclusive(cache.root / "build.lock"):
        doomed = entries if args.all else select_prunable(entries, now=now, max_age_days=args.max_age,
                                                          max_size=max_size)
        for e in doomed:
            cache.remove(e.key)
    print(f"removed {len(doomed)} snapshots ({sum(e.size for e in doomed) / 1048576:.0f} MiB)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .build.pipeline import RepoPaths, build

    cfg = load(args)
    hostdeps.require_root("building an image")
    hostdeps.require_tools(hostdeps.build_tools(signing=bool(cfg.release.signing_key)))
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
    from .build.cache import enforce_limit
    from .build.pipeline import exclusive
    from .config import parse_size

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
    from . import hostdeps
    from .build.pipeline import RepoPaths
    from .build.repro import report, verify

    cfg = load(args)
    hostdeps.require_root("building an image")
    hostdeps.require_tools(hostdeps.build_tools(signing=bool(cfg.release.signing_key)))
    share = tuple(s for s in args.share.split(",") if s)
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
    cache = StageCache(args.cache_dir or default_cache_dir())
    result = verify(cfg, RepoPaths(REPO_ROOT), cache, work, share, clock_ahead_days=args.clock_ahead)
    report(result)
    if not result.same:
        raise EWindowError("the two builds differ: not reproducible (the files above)",
                           hint="diffoscope shows how; README \"Reproducing an image\"")
    log.info("reproducible: both builds gave the same %d artifacts (%s)", len(result.artifacts), work)
    return 0


def cmd_boot_test(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .build.pipeline import artifact_paths
    from .qemu import boottest

    cfg = load(args)
    if not 0 < args.timeout <= 86400:
        raise ConfigError("boot-test", "--timeout", f"{args.timeout} is not a number of seconds "
                          "(1 to 86400)")
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
    from .cards.personalise import deployment, image_vpn_settings, personalise

    cfg = load(args)
    hostdeps.require_tools(hostdeps.PERSONALISE_TOOLS)
    if not args.target.exists():
        raise EWindowError(f"{args.target}: no such image or device")
    personalise(args.target, deployment(cfg, args.hostname, image_vpn_settings(args.target)))
    log.info("personalised %s: %d SSH keys, %d Wi-Fi networks, VPN %s%s", args.target,
             len(cfg.admin.authorized_keys), len(cfg.wifi.networks), ", ".join(cfg.vpn.backends) or "none",
             f", host name {args.hostname}" if args.hostname else "")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from . import hostdeps
    from .build.pipeline import artifact_paths
    from .cards.flash import flash
    from .cards.personalise import deployment, image_vpn_settings, personalise

    cfg = load(args)
    hostdeps.require_root("writing an SD card")
    hostdeps.require_tools(hostdeps.FLASH_TOOLS)
    image = args.image or artifact_paths(cfg, args.out).image
    # bad settings, or a VPN the image lacks, fail before the card is touched (a missing
    # image is flash's to report, after its checks of the device)
    data = deployment(cfg, args.hostname, image_vpn_settings(image) if image.is_file() else None)
    for warning in flash(image, args.device, force=args.force):
        log.warning("warning: --force: %s", warning)
    personalise(args.device, data)
    log.info("%s is ready: put it into the window. At first boot it writes its identity to "
             "ewindow/identity.json on the boot partition (build.py hosts reads it).", args.device)
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    from .fleet.network import init

    path, found = init(args.directory)
    print(f"created {path} (mode 0600). Add to your site.yaml:\n  secrets_file: {path}\n"
          f"A new deployment may also use its own random ULA prefix (RFC 4193):\n"
          f"  identity:\n    prefix: \"{found.prefix}\"")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from .fleet.registry import collect, hosts_lines, tinc_host_files, write_files, zone_lines

    cfg = load(args)
    hosts = collect(list(args.inputs), cfg.identity)  # every card's file checked before any write
    lines = (hosts_lines if args.format == "hosts" else zone_lines)(hosts, cfg.identity.domain)
    if args.tinc_hosts:
        written = write_files(args.tinc_hosts, tinc_host_files(hosts, cfg.vpn.tinc.port))
        log.info("wrote %d tinc host files into %s: %s", len(written), args.tinc_hosts,
                 " ".join(p.name for p in written) or "(no window published a tinc key)")
    for line in lines:
        print(line)
    return 0


COMMANDS = {"build": cmd_build, "config": cmd_config, "plan": cmd_plan, "cache": cmd_cache,
            "packages": cmd_packages,
            "identity": cmd_identity, "boot-test": cmd_boot_test, "personalise": cmd_personalise,
            "flash": cmd_flash, "network": cmd_network, "hosts": cmd_hosts,
            "verify-repro": cmd_verify_repro}


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # `kill` gets the same orderly stop as Ctrl-C: running commands are stopped, no
    # unfinished stage or artifact is kept under a final name.
    raise KeyboardInterrupt


EX_SOFTWARE = 70  # sysexits.h: an internal error (a bug), not the user's input


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
    except Exception as exc:  # a bug: say so in one line; --debug shows where
        if args.debug:
            traceback.print_exc()
        print(f"error: internal error in build.py {args.command}: {type(exc).__name__}: "
              f"{str(exc)[:200]} (run with --debug for the traceback, and please report it)",
              file=sys.stderr)
        return EX_SOFTWARE
