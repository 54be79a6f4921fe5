# SPDX-License-Identifier: MIT
"""How many examples a property test tries: a short budget in ``make test``, a long run with
``EWINDOW_FUZZ_FACTOR=50 make test`` (or pytest on one file)."""

from __future__ import annotations

import os


def examples(short: int) -> int:
    factor = os.environ.get("EWINDOW_FUZZ_FACTOR", "1")
    return short * int(factor) if factor.isdigit() and int(factor) > 0 else short
