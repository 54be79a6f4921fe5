#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmarks for the image build. Prints seconds and ratios against a baseline measured in
the same run; never asserts a time. Run as root: ``make bench`` (all) or
``bench/run.py qemu-cpu compression`` (a selection).

- ``qemu-cpu``     emulated python3 start-up in the built tree per QEMU_CPU value, vs "max"
- ``compression``  zstd and xz levels on the built image: seconds and size, vs zstd -3
- ``snapshots``    stage snapshot formats: store and restore of the 00-base tree, disk use
- ``builds``       cold build, no-op rebuild, one overlay file edited, one package added (vs
                   the cold build), and a plain mmdebstrap of the same package set
                   (initramfs generated during installation with MODULES=most, QEMU default
                   CPU); all with a warm .deb cache so the download does not count
- ``packages``     the source packages: each package's build per architecture (sysroot
                   included), the cold default image (PeerVPN and cjdns from source) vs a cold
                   image without them (two rounds, alternating), and the no-op rebuild; warm
                   .deb and source caches
- ``isolation``    a cold build (fresh stage cache; downloads and source packages shared) and
                   the no-op rebuild, run in the PID and mount namespace (process_tree) and without it
                   (EWINDOW_PID_NAMESPACE=1), alternating
- ``verify-repro`` ``verify-repro`` in its default mode (00-base shared) vs ``--cold``
                   (nothing but downloads shared), on the built image's config
- ``station``      the flashing station: four cards (loop devices) written four at once by one
                   station vs one after another with ``build.py flash``, MB/s per card, and the
                   station's overhead per card (event to first block, last block to done)
- ``repro``        what reproducibility costs: a cold build (fresh stage cache), then on its
                   final tree the image step with and without the reproducibility measures,
                   the stage clock's tree walks, and the release files (manifest hashes, SBOM)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from station_bench import CARDS, bench_station  # noqa: E402

from ewindow_image.apt.sources import apt_sources  # noqa: E402
from ewindow_image.config import load_config, template_context  # noqa: E402
from ewindow_image.pipeline.cache import StageCache, default_cache_dir  # noqa: E402
from ewindow_image.pipeline.driver import RepoPaths  # noqa: E402
from ewindow_image.pipeline.stages.definition import load_stages  # noqa: E402

STEM = "ewindow-trixie-arm64"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def report(title: str, rows: list[tuple[str, float, str]], baseline: str) -> list[str]:
    base = next(seconds for name, seconds, _ in rows if name == baseline)
    lines = [f"## {title}", "", f"| case | seconds | ratio to {baseline} | note |", "|---|---|---|---|"]
    lines += [f"| {name} | {seconds:.1f} | {seconds / base:.2f} | {note} |" for name, seconds, note in rows]
    return lines + [""]


def bench_qemu_cpu(tree: Path) -> list[str]:
    """Same emulated work under each QEMU_CPU: python3 importing a few stdlib modules, 8x."""
    command = ["chroot", str(tree), "/usr/bin/python3", "-c",
               "import json, email.parser, http.client, asyncio"]
    rows = []
    for cpu in ("max", "max,pauth-impdef=on", "max,pauth=off", "cortex-a53", "cortex-a72"):
        timed(command, {"QEMU_CPU": cpu})  # warm the page cache
        seconds = sum(timed(command, {"QEMU_CPU": cpu}) for _ in range(8))
        rows.append((cpu, seconds, "8 emulated python3 start-ups"))
    return report("QEMU_CPU for emulated commands", rows, "max")


def base_packages() -> list[str]:
    cfg = load_config()
    return list(load_stages(REPO / "stages", template_context(cfg))[0].packages)


def bench_builds(cache: StageCache) -> list[str]:
    """Cold build vs plain mmdebstrap, then no-op, overlay edit and package added, all in one
    session, with a copy of the checkout (the overlay edit) and a fresh stage cache that
    shares only the .deb files and apt indexes, so the download is not measured."""
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        checkout = RepoPaths(REPO).copy_to(tmp / "checkout").root
        bench_cache = tmp / "cache"
        bench_cache.mkdir()
        for shared in ("debs", "apt"):
            if (cache.root / shared).exists():
                (bench_cache / shared).symlink_to(cache.root / shared)
        build = [sys.executable, str(checkout / "build.py"), "build", "--cache-dir", str(bench_cache),
                 "--out", str(tmp / "out")]
        cold = timed(build)
        noop = timed(build)
        with (checkout / "packages/ewindow-firstboot/root/usr/sbin/ewindow-boot-report").open("a") as f:
            f.write("# bench: one overlay file edited\n")
        overlay = timed(build)
        package = timed([*build, "--set", "extra_packages=[tmux]"])
        cfg = load_config()
        plain = [
            "mmdebstrap", "--mode=root", "--variant=minbase", "--architectures=arm64",
            "--components=main,contrib,non-free-firmware", f"--include={','.join(base_packages())}",
            "--skip=essential/unlink", '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
            f"--setup-hook=sync-in {cache.debs} /var/cache/apt/archives/",
            cfg.suite.value, str(tmp / "plain-rootfs"), *apt_sources(cfg),
        ]
        baseline = timed(plain, {"QEMU_CPU": "max"})
    rows = [
        ("cold build", cold, "build.py build, empty stage cache: rootfs + image + zstd -9 + bmap + sums"),
        ("plain mmdebstrap", baseline, "same packages, initramfs twice (MODULES=most), QEMU_CPU=max; "
                                       "rootfs only"),
        ("no-op rebuild", noop, "nothing to do"),
        ("one overlay file edited", overlay, "40-ewindow and later + image"),
        ("one package added", package, "45-extra (apt, emulated) and later + image"),
    ]
    return report("Builds, warm .deb cache", rows, "cold build")


def shared_cache(cache: StageCache, target: Path, names: tuple[str, ...]) -> Path:
    target.mkdir(parents=True)
    for name in names:
        if (cache.root / name).exists():
            (target / name).symlink_to(cache.root / name)
    return target


def bench_isolation(cache: StageCache) -> list[str]:
    """What the PID namespace costs a build: a cold build with it and without it (each in a
    fresh stage cache sharing downloads and source packages), and the no-op rebuild, whose
    ~2 s are mostly start-up and plan, five times each (EWINDOW_BENCH_NOOP_RUNS), alternating."""
    cold: dict[str, float] = {}
    noop: dict[str, list[float]] = {"namespace": [], "none": []}
    env_of = {"none": {"EWINDOW_PID_NAMESPACE": "1"}, "namespace": {}}
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for mode in ("none", "namespace"):
            bench_cache = shared_cache(cache, tmp / mode / "cache", ("debs", "apt", "sources", "sysroots",
                                                                     "packages"))
            build = [sys.executable, str(REPO / "build.py"), "build", "--cache-dir", str(bench_cache),
                     "--out", str(tmp / mode / "out")]
            cold[mode] = timed(build, env_of[mode])
        for _ in range(int(os.environ.get("EWINDOW_BENCH_NOOP_RUNS", "5"))):
            for mode in ("none", "namespace"):
                build = [sys.executable, str(REPO / "build.py"), "build", "--cache-dir",
                         str(tmp / mode / "cache"), "--out", str(tmp / mode / "out")]
                noop[mode].append(timed(build, env_of[mode]))
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=True)
    rows = [
        ("cold build, no namespace", cold["none"], "EWINDOW_PID_NAMESPACE=1"),
        ("cold build, PID namespace", cold["namespace"], "as build.py runs"),
        ("no-op rebuild, no namespace", min(noop["none"]), f"best of {len(noop['none'])}"),
        ("no-op rebuild, PID namespace", min(noop["namespace"]), f"best of {len(noop['none'])}"),
    ]
    return report("A build in its own PID and mount namespace", rows, "cold build, no namespace")


def bench_verify_repro(cache: StageCache, out: Path) -> list[str]:
    """verify-repro's default mode (00-base shared) against --cold (downloads only)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-") as tmp_name:
        for mode, extra in (("default", []), ("--cold", ["--cold"])):
            argv = [sys.executable, str(REPO / "build.py"), "verify-repro", "--out", str(out),
                    "--work", str(Path(tmp_name) / mode), *extra]
            start = time.monotonic()
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            verdict = "reproducible" if result.returncode == 0 else f"exit {result.returncode}: " + \
                result.stderr.strip().splitlines()[-1][:120]
            rows.append((mode, time.monotonic() - start, verdict))
    return report("verify-repro", rows, "default")


def bench_packages(cache: StageCache) -> list[str]:
    """Package builds per architecture, then a cold default image (both packages built from
    source) against a cold image without them (vpn.backends=[]), each in a fresh stage cache
    that shares only the downloaded .debs, apt indexes and source archives."""
    from ewindow_image.packages.toolchain import host_arch

    with tempfile.TemporaryDirectory(prefix="ewindow-bench-") as tmp_name:
        tmp = Path(tmp_name)

        def fresh_cache(name: str) -> Path:
            root = tmp / name
            root.mkdir()
            for shared in ("debs", "apt", "sources"):
                if (cache.root / shared).exists():
                    (root / shared).symlink_to(cache.root / shared)
            return root

        package_rows = []
        for arch in sorted({host_arch(), "arm64"}):
            for name in ("peervpn", "cjdns"):
                own_cache = fresh_cache(f"pkg-{name}-{arch}")
                packages = [sys.executable, str(REPO / "build.py"), "packages", "--arch", arch,
                            "--cache-dir", str(own_cache), "--out", str(tmp / "debs"), name]
                package_rows.append((f"{name} {arch}", timed(packages), "sysroot, build, .deb"))
        lines = ["## Source packages, cold (sysroot included)", "", "| package | seconds | note |",
                 "|---|---|---|"]
        lines += [f"| {name} | {seconds:.1f} | {note} |" for name, seconds, note in package_rows] + [""]
        build = [sys.executable, str(REPO / "build.py"), "build", "--out", str(tmp / "out")]
        # two rounds, alternating, each build in a fresh cache: one pair's spread on this
        # machine was ~10 %, as large as what is measured; the faster of each is compared
        withouts, defaults = [], []
        for round_number in (1, 2):
            withouts.append(timed([*build, "--cache-dir", str(fresh_cache(f"without{round_number}")),
                                   "--set", "vpn.backends=[]"]))
            with_cache = fresh_cache(f"with{round_number}")
            defaults.append(timed([*build, "--cache-dir", str(with_cache)]))
        noop = timed([*build, "--cache-dir", str(with_cache)])
        lines += [f"rounds: without {', '.join(f'{s:.1f}' for s in withouts)} s; "
                  f"default {', '.join(f'{s:.1f}' for s in defaults)} s", ""]
    rows = [("cold image without VPN packages", min(withouts), "vpn.backends=[], the faster of two"),
            ("cold default image", min(defaults), "PeerVPN and cjdns cross-built, installed in 35-vpn; "
             "the faster of two"),
            ("no-op rebuild", noop, "nothing to do")]
    return lines + report("Default image with the source packages, warm .deb and source caches", rows,
                          "cold image without VPN packages")


@contextlib.contextmanager
def without_reproducibility() -> Iterator[None]:
    """The image step as it was before: no clamp, no debugfs times, wall-clock FAT and ext4."""
    from ewindow_image.image import clock

    saved = {name: getattr(clock, name) for name in
             ("clamp_times", "debugfs_times_script", "ext4_env", "fat_env")}
    clock.clamp_times = lambda root, epoch: 0
    clock.debugfs_times_script = lambda root, epoch: ""
    clock.ext4_env = lambda epoch: {}
    clock.fat_env = lambda epoch: {}
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(clock, name, value)


def bench_repro(cache: StageCache) -> list[str]:
    """A cold build in a fresh stage cache (sharing downloads only), then, on copies of its
    final tree, the image step with and without the reproducibility measures (each twice,
    alternating; the faster counts), the stage clock's walk once per stage, and the release
    files. The extra time over the cold build is the cost."""
    from ewindow_image.apt.resolver import AptResolver
    from ewindow_image.image import clock
    from ewindow_image.image.artifacts import ArtifactPaths
    from ewindow_image.image.assemble import assemble_image
    from ewindow_image.image.sbom import sbom
    from ewindow_image.pipeline.epoch import STAGE_EPOCH
    from ewindow_image.pipeline.inventory import installed_packages

    cfg = load_config()
    epoch = 1767225600
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-", dir=cache.root) as tmp_name:
        tmp = Path(tmp_name)
        fresh = tmp / "cache"
        fresh.mkdir()
        for shared in ("debs", "apt", "sources", "sysroots"):
            if (cache.root / shared).exists():
                (fresh / shared).symlink_to(cache.root / shared)
        cold = timed([sys.executable, str(REPO / "build.py"), "build", "--cache-dir", str(fresh),
                      "--out", str(tmp / "cold-out")])
        own = StageCache(fresh)
        final = [e for e in own.entries() if e.stage == "90-finalise"][-1]
        stages = len(own.entries())
        source = own.entry(final.key) / "rootfs"

        def assemble(reproducible: bool, n: int) -> float:
            tree = tmp / f"tree-{n}"
            subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(tree)], check=True)
            out = tmp / f"out-{n}"
            out.mkdir()
            start = time.monotonic()
            if reproducible:
                assemble_image(cfg, tree, tmp / f"boot-{n}", ArtifactPaths(out, STEM), epoch)
            else:
                with without_reproducibility():
                    assemble_image(cfg, tree, tmp / f"boot-{n}", ArtifactPaths(out, STEM), epoch)
            seconds = time.monotonic() - start
            subprocess.run(["rm", "-rf", str(tree), str(out), str(tmp / f"boot-{n}")], check=True)
            return seconds

        times: dict[bool, list[float]] = {True: [], False: []}
        for n, reproducible in enumerate((True, False, True, False)):
            times[reproducible].append(assemble(reproducible, n))
        walk_start = time.monotonic()
        clock.stamp_changed(source, time.time_ns(), STAGE_EPOCH)  # nothing newer: the walk alone
        walk = (time.monotonic() - walk_start) * stages
        release_start = time.monotonic()
        packages = installed_packages(source, AptResolver(cfg, cache.root), {}, cache.debs, {})
        sbom(image_name=STEM, image_sha256="0" * 64, image_version="bench", suite="debian-trixie",
             epoch=epoch, tool="bench", packages=packages, tree=source, source_pins=[])
        release = time.monotonic() - release_start
    with_repro, without = min(times[True]), min(times[False])
    extra = with_repro - without + walk
    rows = [
        ("cold build without the measures (derived)", cold - extra, "the cold build minus the extra below"),
        ("cold build (measured)", cold, "fresh stage cache, downloads shared"),
        ("image step without the measures", without, "mke2fs -d, mkfs.fat and mcopy on the wall clock"),
        ("image step with them", with_repro, "clamp, debugfs ctimes/atimes, faketime FAT, fixed times"),
        (f"stage clock: {stages} tree walks", walk, "stamp_changed after each stage"),
        ("release files", release, f"{len(packages)} packages: apt --print-uris, SBOM with licences"),
    ]
    return report("What reproducibility costs", rows, "cold build without the measures (derived)")


def bench_snapshots(cache: StageCache) -> list[str]:
    """Formats for a stage snapshot of the 00-base tree: store, restore, disk use."""
    base = next((e for e in cache.entries() if e.stage == "00-base"), None)
    if base is None:
        return ["(no 00-base snapshot in the cache: build once first)", ""]
    tree = cache.entry(base.key) / "rootfs"
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-", dir=cache.root) as tmp_name:
        tmp = Path(tmp_name)
        cases = {
            "cp -a (used)": (["cp", "-a", "--reflink=auto", str(tree), str(tmp / "s")],
                             ["cp", "-a", "--reflink=auto", str(tmp / "s"), str(tmp / "r")]),
            "tar + zstd -1": (["tar", "--xattrs", "--acls", "-I", "zstd -1 -T0", "-C", str(tree), "-cpf",
                               str(tmp / "s.tar.zst"), "."],
                              ["sh", "-c", f"mkdir {tmp / 'r'} && tar --xattrs --acls -I zstd "
                                           f"-C {tmp / 'r'} -xpf {tmp / 's.tar.zst'}"]),
            "cp -al (hard links)": (["cp", "-al", str(tree), str(tmp / "s")],
                                    ["cp", "-al", str(tmp / "s"), str(tmp / "r")]),
        }
        for name, (store, restore) in cases.items():
            subprocess.run(["sync"], check=True)
            stored = timed(store)
            restored = timed(restore)
            used = subprocess.run(["du", "-s", "--block-size=1M", str(tmp)], capture_output=True, text=True,
                                  check=True).stdout.split()[0]
            rows.append((f"{name}: store", stored, f"disk after store+restore: {used} MiB"))
            rows.append((f"{name}: restore", restored, ""))
            subprocess.run(["rm", "-rf", *map(str, tmp.iterdir())], check=True)
    tree_mib = subprocess.run(["du", "-s", "--block-size=1M", str(tree)], capture_output=True, text=True,
                              check=True).stdout.split()[0]
    return report(f"Stage snapshot formats (the {tree_mib} MiB 00-base tree)", rows, "cp -a (used): store")


def bench_compression(image: Path) -> list[str]:
    rows = []
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-", dir=image.parent) as tmp_name:
        target = Path(tmp_name) / "x"
        cases: list[tuple[str, Callable[[], list[str]]]] = [
            ("zstd -3", lambda: ["zstd", "-q", "-f", "-3", "-T0", "-o", str(target), str(image)]),
            ("zstd -10", lambda: ["zstd", "-q", "-f", "-10", "-T0", "-o", str(target), str(image)]),
            ("zstd -19", lambda: ["zstd", "-q", "-f", "-19", "-T0", "-o", str(target), str(image)]),
            ("xz -6", lambda: ["sh", "-c", f"xz -T0 -6 -c {image} > {target}"]),
        ]
        for name, argv in cases:
            rows.append((name, timed(argv()), ""))
            sizes[name] = target.stat().st_size
    image_mib = image.stat().st_size / 2**20
    rows = [(n, s, f"{sizes[n] / 2**20:.0f} MiB, {image_mib / (sizes[n] / 2**20):.1f}:1")
            for n, s, _ in rows]
    return report(f"Compression of the {image_mib:.0f} MiB image", rows, "zstd -3")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*",
                        default=["qemu-cpu", "compression", "snapshots", "builds", "packages", "repro",
                                 "isolation", "verify-repro", "station"])
    parser.add_argument("--out", type=Path, default=REPO / "out")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: run as root (chroot, mmdebstrap)", file=sys.stderr)
        return 1
    cache = StageCache(default_cache_dir())
    image = args.out / f"{STEM}.img"
    lines: list[str] = []
    base = next((e for e in cache.entries() if e.stage == "00-base"), None)
    if base is None or not image.exists():
        print("error: build once first (make image): the bench uses the built image and tree",
              file=sys.stderr)
        return 1
    printed = 0

    def show() -> None:  # each table as soon as it is measured: a later case may fail
        nonlocal printed
        print("\n".join(lines[printed:]), flush=True)
        printed = len(lines)

    if "qemu-cpu" in args.cases:
        lines += bench_qemu_cpu(cache.entry(base.key) / "rootfs")
        show()
    if "compression" in args.cases:
        lines += bench_compression(image)
        show()
    if "snapshots" in args.cases:
        lines += bench_snapshots(cache)
        show()
    if "builds" in args.cases:
        lines += bench_builds(cache)
        show()
    if "packages" in args.cases:
        lines += bench_packages(cache)
        show()
    if "repro" in args.cases:
        lines += bench_repro(cache)
        show()
    if "isolation" in args.cases:
        lines += bench_isolation(cache)
        show()
    if "verify-repro" in args.cases:
        lines += bench_verify_repro(cache, args.out)
        show()
    if "station" in args.cases:
        lines += report("The flashing station", bench_station(REPO, image),
                        f"{CARDS} cards, build.py flash one after another")
        show()
    if args.json:
        args.json.write_text(json.dumps(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
