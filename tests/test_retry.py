# SPDX-License-Identifier: MIT
from __future__ import annotations

from collections.abc import Callable

import pytest

from ewindow_image.errors import CommandError, EWindowError
from ewindow_image.retry import is_transient, with_retries

SYNC = ("E: Failed to fetch http://deb.debian.org/debian/dists/trixie/main/binary-arm64/"
        "Packages.xz  File has unexpected size (123 != 456). Mirror sync in progress? [IP: 1 80]")


def failing(outputs: list[str]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= len(outputs):
            raise CommandError(["mmdebstrap"], 25, outputs[len(calls) - 1].splitlines()[-1],
                               output=outputs[len(calls) - 1])
        return "ok"

    return calls, action


def test_mirror_sync_is_retried_with_backoff() -> None:
    calls, action = failing([SYNC, "W: some warning\nE: Connection reset by peer"])
    waits: list[float] = []
    assert with_retries(action, attempts=4, what="stage 00-base", sleep=waits.append) == "ok"
    assert len(calls) == 3
    assert waits == [10.0, 30.0]


def test_other_failures_are_not_retried() -> None:
    calls, action = failing(["E: Unable to locate package tinc2"])
    with pytest.raises(CommandError, match="Unable to locate"):
        with_retries(action, attempts=4, what="x", sleep=lambda s: None)
    assert len(calls) == 1


def test_persistent_mirror_errors_end_with_a_clear_message() -> None:
    calls, action = failing([SYNC] * 5)
    with pytest.raises(EWindowError) as info:
        with_retries(action, attempts=3, what="stage 00-base", sleep=lambda s: None)
    assert len(calls) == 3
    assert str(info.value).startswith("stage 00-base: the mirror kept failing after 3 attempts:")
    assert info.value.hint and "apt.mirror" in info.value.hint


@pytest.mark.parametrize(("line", "transient"), [
    (SYNC, True),
    ("E: Failed to fetch … Hash Sum mismatch", True),
    ("Err:1 http://x trixie InRelease Temporary failure resolving 'deb.debian.org'", True),
    ("E: Failed to fetch … 503  Service Unavailable", True),
    ("E: Package 'foo' has no installation candidate", False),
    ("dpkg: error processing package bar (--configure)", False),
])
def test_transient_classification(line: str, transient: bool) -> None:
    assert is_transient(CommandError(["apt-get"], 100, line, output=line)) is transient
