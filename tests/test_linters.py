# SPDX-License-Identifier: MIT
"""Linters as tests. A missing linter skips locally but fails in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def require(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} not installed")
    return path


def check(argv: list[str]) -> None:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    check([require("ruff"), "check", "."])


def test_mypy() -> None:
    check([require("mypy")])


def test_shellcheck() -> None:
    scripts = [p for p in (REPO / "overlays").rglob("*")
               if p.is_file() and p.read_text(errors="replace").startswith(("#!/bin/sh", "#!/bin/bash"))]
    assert scripts, "no shell scripts found in overlays/"
    check([require("shellcheck"), *map(str, scripts)])
