# SPDX-License-Identifier: MIT
"""An interrupt storm (issue 23): builds of a copy of the checkout, each after an edit to a
file of 40-ewindow (or with the file as committed), each ended by SIGKILL, SIGHUP, SIGTERM or
SIGINT at a seeded random moment, during a cache restore, an emulated apt run, the image's
assembly, its compression, or anywhere; then one build to the end.

Each interrupted build leaves no process running, no half-written file and no build-info or
SHA256SUMS (which would claim a finished set; a complete .img keeps its name); one
with the same edit as the build before resumes after the stages that one finished. The last
build, with the file as committed, takes the stages that the builds interrupted in the
image's assembly and compression finished, exits 0 and gives the same image, byte for byte,
as the session's image (the same commit, built once without interruption). (Until
2026-12-03 those two builds had an edit of their own and the last one redid every stage
from 40-ewindow: 75 s more, and no check of stages cached by interrupted builds.)
The storm's cache shares the downloads, the source packages and the stages before
40-ewindow with the main cache (as verify-repro shares the base), so a build with a version
of the file not built before redoes 40-ewindow to 90-finalise and the image; the file edited
is in ewindow-firstboot, which 40-ewindow installs.

EWINDOW_STORM_SEED picks another storm (the seed is in every failure message)."""

from __future__ import annotations

import filecmp
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ewindow_image.pipeline.cache import default_cache_dir
from ewindow_image.pipeline.driver import RepoPaths
from ewindow_image.process_tree import processes_using, running, start_time

from .conftest import REPO, Built, requires_root

pytestmark = [pytest.mark.slow, requires_root]

EDITED = "packages/ewindow-firstboot/root/usr/sbin/ewindow-boot-report"
SHARED_STAGES = ("00-base", "10-boot", "20-system", "30-access", "35-vpn")
SEED = int(os.environ.get("EWINDOW_STORM_SEED", "23"))
# when the signal goes: the build log line that starts the moment, and the seconds after it
MOMENTS = {
    "restore": ("==> restore ", (0.0, 1.0)),  # cp -a of a snapshot into the work tree
    "apt": ("==> stage 42-agent", (4.0, 10.0)),  # apt-get update/install, emulated (~13 s)
    "assemble": ("==> assemble image", (0.5, 4.0)),  # mke2fs, mcopy under faketime
    "write": ("==> write artifacts", (1.0, 6.0)),  # bmaptool, zstd (before xz)
    "any": ("==> plan", (10.0, 40.0)),
}


@dataclass(frozen=True)
class Interruption:
    edit: str  # the edit before this build ("": as committed): the same twice resumes the first's stages
    signum: signal.Signals
    moment: str
    resumes: str = ""  # a log line this build must show: it took the stages the one before finished


STORM = (
    Interruption("a", signal.SIGKILL, "restore"),
    Interruption("b", signal.SIGHUP, "apt"),
    Interruption("b", signal.SIGKILL, "apt", resumes="==> restore 40-ewindow from the cache"),
    Interruption("", signal.SIGTERM, "assemble"),
    Interruption("", signal.SIGINT, "write", resumes="==> restore 90-finalise from the cache"),
    Interruption("d", signal.SIGKILL, "any"),
)
UNFINISHED = (".partial", ".build-info.json", "SHA256SUMS")


def storm_cache(tmp: Path) -> Path:
    """Links to the main cache's downloads, source packages and the snapshots of the stages
    before 40-ewindow; nothing else."""
    main = default_cache_dir()
    cache = tmp / "cache"
    (cache / "stages").mkdir(parents=True)
    for name in ("debs", "apt", "sources", "sysroots", "packages"):
        (cache / name).symlink_to(main / name)
    for meta in (main / "stages").glob("*/stage.json"):
        if json.loads(meta.read_text()).get("stage") in SHARED_STAGES:
            (cache / "stages" / meta.parent.name).symlink_to(meta.parent)
    return cache


def descendants(pid: int) -> list[tuple[int, int | None]]:
    """Every process under ``pid`` now, with its start time (a pid alone may be reused)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += [(k, start_time(k)) for k in kids]
            todo += kids
    return found


def still_running(processes: list[tuple[int, int | None]]) -> list[int]:
    return [pid for pid, started in processes if started is not None and running(pid, started)]


def interrupt(argv: list[str], env: dict[str, str], interruption: Interruption, rng: random.Random,
              where: str, out: Path) -> None:
    marker, (low, high) = MOMENTS[interruption.moment]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reached = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith(marker):
                reached.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert reached.wait(600), f"{where}: never reached {marker!r}: {''.join(lines[-20:])}"
    time.sleep(rng.uniform(low, high))
    assert process.poll() is None, f"{where}: ended before the signal: {''.join(lines[-20:])}"
    tree = descendants(process.pid)
    process.send_signal(interruption.signum)
    status = process.wait(timeout=180)
    reader.join(timeout=10)
    log = "".join(lines[-15:])
    expected = -signal.SIGKILL if interruption.signum == signal.SIGKILL else 130
    assert status == expected, f"{where}: exit {status}\n{log}"
    deadline = time.monotonic() + 10
    while still_running(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert still_running(tree) == [], f"{where}: left running {still_running(tree)}\n{log}"
    # nothing half-written: no .partial left, and no build-info or SHA256SUMS, which would
    # claim a finished set (a complete .img or .bmap may keep its name)
    leftovers = [p.name for p in out.glob("*") if p.name.endswith(UNFINISHED)]
    assert leftovers == [], f"{where}: unfinished or claimed artifacts: {leftovers}"
    if interruption.resumes:
        assert interruption.resumes in "".join(lines), f"{where}: did not resume\n{log}"


def test_a_storm_of_interruptions_then_one_build_gives_the_same_image(built: Built, tmp_path: Path) -> None:
    checkout = RepoPaths(REPO).copy_to(tmp_path / "checkout").root
    cache = storm_cache(tmp_path)
    edited = checkout / EDITED
    original, original_times = edited.read_bytes(), edited.stat()
    argv = [sys.executable, str(checkout / "build.py"), "build", "-c", str(built.site),
            "--cache-dir", str(cache), "--out", str(tmp_path / "out")]
    # the session image's epoch (the last commit's time): a copy without git would take
    # its newest file's
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(built.info["source_date_epoch"])}
    rng = random.Random(SEED)
    started = time.monotonic()
    def as_committed() -> None:
        edited.write_bytes(original)
        os.utime(edited, ns=(original_times.st_atime_ns, original_times.st_mtime_ns))

    for number, interruption in enumerate(STORM, 1):
        if interruption.edit:
            edited.write_bytes(original + f"# storm edit {interruption.edit}\n".encode())
        else:
            as_committed()
        where = (f"storm seed {SEED}, build {number}: {interruption.signum.name} during "
                 f"{interruption.moment}")
        interrupt(argv, env, interruption, rng, where, tmp_path / "out")
    storm_seconds = time.monotonic() - started

    as_committed()
    final = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert final.returncode == 0, f"storm seed {SEED}: {final.stderr[-3000:]}"
    # the stages the interrupted builds finished, not built again
    assert "==> stage 40-ewindow: cached" in final.stderr, final.stderr[-3000:]
    assert "==> restore 90-finalise from the cache" in final.stderr, final.stderr[-3000:]
    assert processes_using([cache]) == []
    image = tmp_path / "out" / f"{built.stem}.img"
    assert filecmp.cmp(image, built.image, shallow=False), f"storm seed {SEED}: the image differs"
    print(f"storm: {len(STORM)} interrupted builds in {storm_seconds:.0f} s, "
          f"then a whole build in {time.monotonic() - started - storm_seconds:.0f} s")
