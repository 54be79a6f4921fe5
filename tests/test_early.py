# SPDX-License-Identifier: MIT
"""Source packages built in a background thread while the emulated stages run
(ewindow_image/pipeline/early.py): their commands run beside the main thread's, a failure
reaches the main thread as the build's own error, interrupts stay the main thread's, and an
interrupted build leaves no command of the thread running."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ewindow_image import interrupts
from ewindow_image.errors import CommandError
from ewindow_image.pipeline.early import EarlyPackages
from ewindow_image.runner import run

REPO = Path(__file__).resolve().parent.parent


class Planned:
    """What EarlyPackages reads of a planned package: its label and whether it is cached."""

    def __init__(self, label: str, cached: bool = False) -> None:
        self.label = label
        self.cached = cached


class Sources:
    """SourcePackages' ensure(), running a real command per package."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.built: list[tuple[str, str]] = []

    def ensure(self, planned: Planned) -> None:
        run(self.argv)
        self.built.append((planned.label, threading.current_thread().name))


def early(sources: Sources, planned: list[Planned]) -> EarlyPackages:
    return EarlyPackages(sources, planned)  # type: ignore[arg-type]


def test_packages_build_beside_the_main_thread_in_plan_order(tmp_path: Path) -> None:
    # each package's command waits until the main thread's own command has run: built one
    # after the other in start(), they would wait in vain and fail after 20 s
    go = tmp_path / "stage-ran"
    sources = Sources(["timeout", "20", "sh", "-c", f'until [ -e "{go}" ]; do sleep 0.05; done'])
    packages = early(sources, [Planned("a"), Planned("cached", cached=True), Planned("b")])
    packages.start()
    run(["touch", str(go)])  # the main thread's own stage meanwhile
    packages.wait()
    assert sources.built == [("a", "source-packages"), ("b", "source-packages")]
    assert packages.thread is not None and packages.thread.daemon


def test_nothing_to_build_starts_no_thread() -> None:
    packages = early(Sources(["false"]), [Planned("a", cached=True)])
    packages.start()
    packages.wait()
    assert packages.thread is None


def test_a_failed_package_is_the_main_threads_error() -> None:
    packages = early(Sources(["false"]), [Planned("a"), Planned("b")])
    packages.start()
    with pytest.raises(CommandError):
        packages.wait()
    with pytest.raises(CommandError):
        packages.check()  # at every later stage boundary too


def test_a_lost_interrupt_is_raised_in_the_main_thread_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupts, "_lost", True)
    seen: list[str] = []

    def in_a_thread() -> None:
        try:
            interrupts.checkpoint()
            seen.append("went on")
        except KeyboardInterrupt:
            seen.append("took it")

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == ["went on"]  # the thread did not take it
    with pytest.raises(KeyboardInterrupt):
        interrupts.checkpoint()


# The driver's pattern: the stages run in the main thread while the thread builds; SIGTERM
# during the wait stops the build (exit 130) and the thread's command with it.
SCRIPT = """
import argparse, sys
sys.path.insert(0, {tests!r})
from ewindow_image import process_tree
from ewindow_image.cli import run_command
from test_early import Planned, Sources, early

def body(args):
    packages = early(Sources(["sleep", "{marker}"]), [Planned("a")])
    try:
        packages.start()
        print("started", file=sys.stderr, flush=True)
        packages.wait()
    except BaseException:
        process_tree.stop_descendants()
        raise
    return 0

sys.exit(run_command(argparse.Namespace(handler=body, debug=False, command="test")))
"""


def test_an_interrupt_during_the_wait_stops_the_background_command() -> None:
    marker = f"{time.time() % 1000 + 100:.3f}"  # a sleep nobody else runs
    script = SCRIPT.format(tests=str(REPO / "tests"), marker=marker)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert "started" in process.stderr.readline()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pgrep(marker):
            time.sleep(0.1)
        assert pgrep(marker), "the background command never started"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 130
        assert not pgrep(marker), "the background command outlived the build"
    finally:
        process.kill()
        process.wait()
        subprocess.run(["pkill", "-f", f"sleep {marker}$"], check=False)


def pgrep(marker: str) -> bool:
    """A `sleep MARKER` runs (the runner starts it by its full path)."""
    found = subprocess.run(["pgrep", "-f", f"sleep {marker}$"], capture_output=True, check=False)
    return found.returncode == 0
