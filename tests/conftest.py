# SPDX-License-Identifier: MIT
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def fake_target(tmp_path: Path) -> Path:
    """A minimal target tree with its own users, different from the build host's."""
    root = tmp_path / "target"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "ewindow:x:1000:1000::/home/ewindow:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nsudo:x:27:ewindow\newindow:x:1000:\n")
    return root


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (make test runs as root)")
