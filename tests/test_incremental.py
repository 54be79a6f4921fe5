# SPDX-License-Identifier: MIT
"""Rebuild only what changed: ``plan`` and ``build`` after an overlay edit and a package added.

Runs a copy of the checkout (so the test can edit an overlay) with a cache folder seeded from
the main cache, warm from the ``built`` fixture.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ewindow_image.pipeline.driver import RepoPaths

from .conftest import REPO, Built, requires_root, seeded_cache, share_snapshots

pytestmark = [pytest.mark.slow, requires_root]
REPORT = "packages/ewindow-firstboot/root/usr/sbin/ewindow-boot-report"  # in ewindow-firstboot


def cli(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, str(checkout / "build.py"), *args], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def stage_lines(plan_output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in plan_output.splitlines()
            if line.startswith("  ") and line.split()[0][:2].isdigit()}


def test_plan_and_build_redo_only_what_changed(built: Built, tmp_path: Path) -> None:
    checkout = RepoPaths(REPO).copy_to(tmp_path / "checkout").root
    site = tmp_path / "site.yaml"  # the built image's stages, cheaper compression
    site.write_text(f"admin:\n  authorized_keys: ['{built.public_key}']\n"
                    "image:\n  compression: [zstd]\n  zstd_level: 1\n")
    cache = seeded_cache(tmp_path)
    common = ["-c", str(site), "--cache-dir", str(cache), "--out", str(tmp_path / "out")]
    cli(checkout, "build", *common)
    share_snapshots(cache)

    # after a fresh build: nothing to do, and a second build leaves the artifacts alone
    plan = cli(checkout, "plan", *common).stdout
    assert "nothing to rebuild" in plan and set(stage_lines(plan).values()) == {"cached"}
    image = tmp_path / "out" / f"{built.stem}.img"
    before = image.stat().st_mtime_ns
    assert "nothing to do" in cli(checkout, "build", *common).stderr
    assert image.stat().st_mtime_ns == before

    # card, fleet and CLI code edited: no stage depends on it, nothing rebuilds
    for module in ("cards/flash.py", "fleet/registry.py", "cli.py"):
        with (checkout / "ewindow_image" / module).open("a") as f:
            f.write("# edited by test_incremental\n")
    plan = cli(checkout, "plan", *common).stdout
    assert "nothing to rebuild" in plan and set(stage_lines(plan).values()) == {"cached"}
    assert "nothing to do" in cli(checkout, "build", *common).stderr

    # an earlier release's manifest with another bash: plan and build name the package
    manifest = tmp_path / "out" / f"{built.stem}.manifest"
    current = manifest.read_text()
    bash_version = next(line.split("\t")[1] for line in current.splitlines() if line.startswith("bash\t"))
    older = bash_version[:-1] + ("1" if bash_version[-1] == "0" else "0")  # same length
    earlier = tmp_path / "earlier.manifest"
    earlier.write_text(current.replace(f"bash\t{bash_version}\t", f"bash\t{older}\t"))
    plan = cli(checkout, "plan", *common, "--manifest", str(earlier)).stdout
    assert f"packages the mirror serves today in other versions than {earlier}:\n  bash {older} → " \
        f"{bash_version}\n" in plan
    assert "other versions" not in cli(checkout, "plan", *common).stdout
    manifest.write_text(earlier.read_text())
    build = cli(checkout, "build", *common).stderr
    assert f"==> 1 packages differ from {manifest.name}: bash {older} → {bash_version}" in build
    assert "nothing to do" in build  # the artifacts are still this commit's (sizes unchanged)
    manifest.write_text(current)
    assert image.stat().st_mtime_ns == before

    # one file of a package built from the checkout edited: the package and the stage that
    # installs it rebuild, then the later ones, and plan says why
    # an edit no earlier run made: a run before this one on the same cache (the same commit)
    # has the package built with its own edit already, and plan would call it cached
    with (checkout / REPORT).open("a") as f:
        f.write(f"# edited by test_incremental {uuid.uuid4()}\n")
    plan = cli(checkout, "plan", *common).stdout
    states = stage_lines(plan)
    assert states == {name: "cached" if name < "40" else "rebuild" for name in states}
    assert {"00-base", "30-access", "40-ewindow", "90-finalise"} <= set(states)
    assert "- file usr/sbin/ewindow-boot-report changed" in plan
    assert "- package ewindow-firstboot built from this checkout: " in plan
    assert "- follows 40-ewindow, which rebuilds" in plan
    log = cli(checkout, "build", *common).stderr
    assert "==> stage 30-access: cached" in log and "<== stage 40-ewindow" in log
    assert "<== stage 30-access" not in log

    # one package added: only the package stage and those after it
    with_tmux = [*common, "--set", "extra_packages=[tmux]"]
    plan = cli(checkout, "plan", *with_tmux).stdout
    assert stage_lines(plan)["40-ewindow"] == "cached"
    assert stage_lines(plan)["45-extra"] == "rebuild"
    assert "- package tmux added" in plan
    log = cli(checkout, "build", *with_tmux).stderr
    assert "==> stage 40-ewindow: cached" in log and "<== stage 45-extra" in log
    manifest_text = (tmp_path / "out" / f"{built.stem}.manifest").read_text()
    assert "\ntmux\t" in manifest_text
