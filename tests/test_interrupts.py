# SPDX-License-Identifier: MIT
"""A SIGHUP, SIGTERM or Ctrl-C that Python delivers inside a weakref callback (where it cannot
raise it, and drops it) still stops the command, with exit 130 (interrupts.py). The storm test
in CI met this once: the garbage collector ran threading's WeakSet callback for a finished
command's threads just as the SIGHUP came, and the build went on to exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The signal is sent from inside a weakref callback, whose loop lets Python run the handler
# there: the KeyboardInterrupt it raises is "unraisable" and would be lost.
SCRIPT = """
import argparse, os, signal, sys, weakref
from ewindow_image.cli import run_command
from ewindow_image.runner import run

def body(args):
    class Thing: pass
    thing = Thing()
    def landed(ref):
        os.kill(os.getpid(), signal.{signal})
        for _ in range(100): pass
    ref = weakref.ref(thing, landed)
    del thing
    print("after the callback", file=sys.stderr, flush=True)
    {then}
    print("went on", file=sys.stderr, flush=True)
    return 0

sys.exit(run_command(argparse.Namespace(handler=body, debug=False, command="test")))
"""


@pytest.mark.parametrize("signal", ["SIGHUP", "SIGTERM", "SIGINT"])
@pytest.mark.parametrize("then", ["run(['true'])", "pass"])
def test_an_interrupt_python_drops_in_a_callback_still_stops_the_command(signal: str, then: str) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(signal=signal, then=then)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert "after the callback" in result.stderr  # the callback swallowed it: Python went on
    assert "Exception ignored" not in result.stderr
    assert result.returncode == 130, result.stderr
    assert result.stderr.rstrip().endswith("interrupted")
    if then != "pass":  # the next command is not started
        assert "went on" not in result.stderr
