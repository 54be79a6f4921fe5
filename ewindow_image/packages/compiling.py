# SPDX-License-Identifier: MIT
"""Unpack, patch, build and stage one package. Every command's output goes to the package's
own build log, so a failure is one line naming the recipe and that log."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from ..errors import CommandError, EWindowError
from ..runner import run
from . import toolchain
from .recipe import Recipe
from .source import unpack
from .toolchain import Target


class PackageBuildError(EWindowError):
    pass


def patch_command(patch: Path) -> str:
    # git apply works outside a repository too, and refuses a patch that does not apply
    # cleanly instead of leaving .rej files behind.
    return f"git apply -p1 --whitespace=nowarn {shlex.quote(os.fspath(patch))}"


def step_argv(command: str, log_file: Path) -> list[str]:
    """A recipe command, its output appended to the package's log."""
    return ["bash", "-c", f"set -euo pipefail; exec >>{shlex.quote(os.fspath(log_file))} 2>&1; {command}"]


def _run_logged(command: str, recipe: Recipe, target: Target, what: str, log_file: Path, *,
                cwd: Path, env: dict[str, str] | None = None) -> None:
    with log_file.open("a") as log:
        log.write(f"# {what}: {command}\n")
    try:
        run(step_argv(command, log_file), cwd=cwd, env=env)
    except CommandError as exc:
        raise PackageBuildError(f"{recipe.name} ({target.arch}): {what} failed with exit status "
                                f"{exc.returncode}; log: {log_file}") from None


def build(recipe: Recipe, target: Target, archive: Path, sysroot: Path, work: Path,
          log_file: Path, epoch: int) -> Path:
    """Build ``recipe`` in ``work`` (made anew); return the staging root of its files."""
    shutil.rmtree(work, ignore_errors=True)
    source, staging = work / "src", work / "staging"
    unpack(archive, source)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"# {recipe.name} {recipe.deb_version} for {target.label}\n")
    for patch in recipe.patches:
        _run_logged(patch_command(patch), recipe, target, f"patch {patch.name}", log_file, cwd=source)
    wrapper = work / "toolchain" / "cc"
    wrapper.parent.mkdir()
    wrapper.write_text(toolchain.compiler_wrapper(target, sysroot, source))
    wrapper.chmod(0o755)
    env = toolchain.build_env(target, wrapper, source, epoch)
    for index, command in enumerate(recipe.build, 1):
        _run_logged(command, recipe, target, f"build step {index}", log_file, cwd=source, env=env)
    for built, installed in recipe.install:
        src, dest = source / built, staging / installed
        if not src.is_file():
            raise PackageBuildError(f"{recipe.name} ({target.arch}): the build made no {built}; "
                                    f"log: {log_file}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(0o755 if os.access(src, os.X_OK) else 0o644)
        if dest.stat().st_mode & 0o111:
            _run_logged(shlex.join(toolchain.strip_argv(target, dest)), recipe, target,
                        f"strip {installed}", log_file, cwd=work)
    return staging
