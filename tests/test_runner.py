# SPDX-License-Identifier: MIT
from __future__ import annotations

import logging

import pytest

from ewindow_image.errors import CommandError, HostError
from ewindow_image.log import setup_logging
from ewindow_image.runner import run


def test_output_is_logged_and_captured(caplog: pytest.LogCaptureFixture) -> None:
    setup_logging(verbose=True)
    logger = logging.getLogger("ewindow")
    logger.addHandler(caplog.handler)
    try:
        assert run(["sh", "-c", "echo out; echo err >&2"], capture=True) == "out\n"
        run(["echo", "streamed"])
    finally:
        logger.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in caplog.records]
    assert "+ sh -c 'echo out; echo err >&2'" in messages
    assert "  err" in messages and "  streamed" in messages


def test_failure_names_command_status_and_last_line() -> None:
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", "echo working; echo 'E: no space left' >&2; exit 3"])
    assert str(info.value) == "'sh' failed with exit status 3: E: no space left"
    assert info.value.returncode == 3


def test_missing_command_is_a_host_error() -> None:
    with pytest.raises(HostError, match="command not found: no-such-tool-ewindow"):
        run(["no-such-tool-ewindow"])


def test_input_and_environment() -> None:
    out = run(["sh", "-c", 'read x; echo "$x $EWINDOW_T $LANG"'], input_text="hi\n",
              env={"EWINDOW_T": "1"}, capture=True)
    assert out == "hi 1 C.UTF-8\n"
