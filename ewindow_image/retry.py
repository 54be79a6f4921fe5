# SPDX-License-Identifier: MIT
"""Retrying commands that failed because the mirror had a bad moment.

Debian mirrors briefly serve an index whose size does not match the Release file while they
sync ("File has unexpected size … Mirror sync in progress?"), and networks reset connections.
Such a failure is retried with backoff; any other failure is not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import CommandError, EWindowError
from .log import log

T = TypeVar("T")

TRANSIENT = re.compile(
    r"unexpected size|Mirror sync in progress|Hash Sum mismatch|Connection reset|"
    r"Connection refused|Connection timed out|Temporary failure resolving|Could not connect|"
    r"Could not resolve|\b50[234]\b|Undetermined Error|Error reading from server",
    re.IGNORECASE,
)
BACKOFF_SECONDS = (10.0, 30.0, 60.0, 120.0)


def is_transient(error: CommandError) -> bool:
    return bool(TRANSIENT.search(error.output or str(error)))


def with_retries(action: Callable[[], T], *, attempts: int, what: str,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action``; on a transient mirror error wait and run it again, ``attempts`` times
    in all. The action must start from a clean state each time (the stages do)."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except CommandError as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise EWindowError(
                    f"{what}: the mirror kept failing after {attempts} attempts: {exc}",
                    hint="try again later, or set apt.mirror to another Debian mirror") from None
            delay = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
            log.warning("    %s: transient mirror error (%s); retrying in %.0f s (%d/%d)",
                        what, exc, delay, attempt + 1, attempts)
            sleep(delay)
    raise AssertionError("unreachable")
