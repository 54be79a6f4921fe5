# SPDX-License-Identifier: MIT
"""Nothing a build starts outlives it (issue 23): the PID namespace of process_tree, the
signals build.py takes, and the build lock that waits for a killed build's last processes.

Real processes, real signals: a helper script runs the CLI's own signal handling around a
body that starts commands through the builder's runner, the way a stage does."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ewindow_image.errors import EWindowError
from ewindow_image.pipeline.lock import exclusive, wait_for_strays
from ewindow_image.process_tree import descendants, processes_using, run_isolated, running, stop_descendants

from .conftest import REPO, requires_root

pytestmark = requires_root

# Runs ``body`` as build.py runs a command: the CLI's handlers (SIGTERM and SIGHUP as Ctrl-C,
# exit 130), in a PID namespace. The body starts, through the runner, a command in a session
# of its own with a grandchild, and a grandchild that makes a new session for itself.
HELPER = textwrap.dedent("""
    import argparse, sys, time
    sys.path.insert(0, {repo!r})
    from ewindow_image import cli
    from ewindow_image.log import setup_logging
    from ewindow_image.process_tree import run_isolated
    from ewindow_image.runner import run

    def body(args):
        if {orphan!r}:
            run(["sh", "-c", "sleep {marker}1 >/dev/null 2>&1 &"])  # left behind, reparented
            time.sleep(1.5)
            return 0
        run(["sh", "-c", "setsid sleep {marker}2 & sleep {marker}3 & exec sleep {marker}4"])
        return 0

    setup_logging(False)
    args = argparse.Namespace(handler=body, debug=False, command="test")
    sys.exit(run_isolated(lambda: cli.run_command(args)))
""")


def marked(marker: str) -> list[int]:
    """pids of the sleeps a helper started (their argv carries the marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == b"sleep" and len(argv) > 1 and argv[1].startswith(marker.encode()):
            found.append(int(entry.name))
    return found


def start(tmp_path: Path, *, orphan: bool = False) -> tuple[subprocess.Popen[str], str]:
    marker = str(random.randint(10**6, 10**7))  # sleep MARKER1 … MARKER4: hours, and ours
    script = tmp_path / "helper.py"
    script.write_text(HELPER.format(repo=str(REPO), marker=marker, orphan=orphan))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    return process, marker


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_no_process_outlives_build_py_whatever_signal_ends_it(tmp_path: Path, signum: int) -> None:
    process, marker = start(tmp_path)
    assert wait_for(lambda: len(marked(marker)) == 3), "the helper's commands did not start"
    process.send_signal(signum)
    status = process.wait(timeout=60)
    assert wait_for(lambda: marked(marker) == [], timeout=5), f"left running: {marked(marker)}"
    if signum == signal.SIGKILL:
        assert status == -signal.SIGKILL
    else:  # Ctrl-C, kill and a dropped SSH session: the same orderly stop
        assert status == 130
        assert "interrupted" in (process.stderr.read() if process.stderr else "")


def test_the_builder_killed_by_itself_takes_its_commands_along(tmp_path: Path) -> None:
    """As the OOM killer would: SIGKILL to the builder, not to build.py."""
    process, marker = start(tmp_path)
    assert wait_for(lambda: len(marked(marker)) == 3)
    init = children(process.pid)
    assert len(init) == 1, init
    builder = children(init[0])
    assert len(builder) == 1, builder
    os.kill(builder[0], signal.SIGKILL)
    assert process.wait(timeout=30) == 128 + signal.SIGKILL
    assert wait_for(lambda: marked(marker) == [], timeout=5), f"left running: {marked(marker)}"
    assert "killed" in (process.stderr.read() if process.stderr else "")


def test_a_command_left_in_the_background_ends_with_the_build(tmp_path: Path) -> None:
    process, marker = start(tmp_path, orphan=True)
    assert wait_for(lambda: len(marked(marker)) == 1)
    assert process.wait(timeout=30) == 0
    assert wait_for(lambda: marked(marker) == [], timeout=5)


def killed_build_holding_the_lock(lock: Path, seconds: float) -> int:
    """A build that took the lock, started a command (which holds the lock too) and was
    killed: returns the pid of that command, still running."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from ewindow_image.pipeline.lock import exclusive
        from ewindow_image.runner import spawn
        with exclusive(Path({str(lock)!r})):
            child = spawn(["sleep", "{seconds}"])
            print(child.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    return int(result.stdout.split()[0])


def test_a_killed_builds_last_command_is_waited_for(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    lock = tmp_path / "build.lock"
    sleeper = killed_build_holding_the_lock(lock, 2)
    assert running(sleeper)
    with caplog.at_level(logging.WARNING, logger="ewindow"), exclusive(lock):
        assert not running(sleeper)  # it waited: the sleeper had ended before the lock was had
    assert f"{sleeper} sleep" in caplog.text and "waiting for its processes to end" in caplog.text


def test_a_stuck_process_of_a_killed_build_is_named(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    sleeper = killed_build_holding_the_lock(lock, 30)
    try:
        with pytest.raises(EWindowError, match=rf"still hold .*build.lock after 1 s: {sleeper} sleep"), \
                exclusive(lock, wait=1):
            pass
    finally:
        os.kill(sleeper, signal.SIGKILL)


def test_a_live_build_is_refused_not_waited_for(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from ewindow_image.pipeline.lock import exclusive
        with exclusive(Path({str(lock)!r})):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        refused = rf"another build \(pid {holder.pid}\) is using"
        with pytest.raises(EWindowError, match=refused), exclusive(lock):
            pass
        assert holder.poll() is None  # refused while the holder holds it: nothing waited for it
    finally:
        holder.kill()
        holder.wait()


def test_commands_inherit_the_lock_above_the_low_descriptors(tmp_path: Path) -> None:
    """A command run under the lock holds it, under a number of 100 or more: mmdebstrap's
    hook pipe must stay below 10 (dash), so no inherited fd may take a low number."""
    from ewindow_image.runner import run

    with exclusive(tmp_path / "build.lock"):
        listing = run(["ls", "-l", "/proc/self/fd"], capture=True)
    inherited = {int(line.split()[-3]): line.split()[-1] for line in listing.splitlines()
                 if "->" in line}
    assert {fd for fd, target in inherited.items() if target.endswith("build.lock")} == {100}
    assert sorted(fd for fd in inherited if fd > 2 and not inherited[fd].endswith("build.lock")) \
        in ([], [3])  # ls' own listing of /proc/self/fd


def test_strays_in_the_work_tree_are_found_and_waited_for(tmp_path: Path) -> None:
    work = tmp_path / "work" / "build-1"
    work.mkdir(parents=True)
    stray = subprocess.Popen(["sleep", "1.5"], cwd=work)
    try:
        assert [p.pid for p in processes_using([tmp_path / "work"])] == [stray.pid]
        assert processes_using([tmp_path / "elsewhere"]) == []
        wait_for_strays([tmp_path / "work"], wait=20)
        assert stray.wait(timeout=0.5) == 0  # it waited: the stray had ended (no clock asserted)
    finally:
        stray.kill()
        stray.wait()
    with subprocess.Popen(["sleep", "30"], cwd=work) as stuck:
        try:
            with pytest.raises(EWindowError, match=rf"after 1 s: {stuck.pid} sleep"):
                wait_for_strays([tmp_path / "work"], wait=1)
        finally:
            stuck.kill()


def test_a_build_has_its_own_dev_shm_and_mounts(tmp_path: Path) -> None:
    """What a build's processes leave in /dev/shm (libfaketime's pid-named semaphores) and the
    mounts it makes go with it: the next build, numbering its processes from 1 again, meets
    none of them."""
    marker = f"ewindow-test-{random.randint(10**6, 10**7)}"
    mountpoint = tmp_path / "mounted"
    mountpoint.mkdir()
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from ewindow_image.process_tree import run_isolated
        from ewindow_image.runner import run

        def body():
            listing = run(["sh", "-c", "ls -A /dev/shm; touch /dev/shm/{marker}; "
                           "mount -t tmpfs scratch {mountpoint}; touch {mountpoint}/inside"], capture=True)
            print(repr(listing.split()), flush=True)
            return 0 if os.path.exists("/dev/shm/{marker}") else 3

        sys.exit(run_isolated(body))
    """)
    left_before = Path(f"/dev/shm/{marker}-host")
    left_before.touch()  # as an earlier build's leftover would be
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"  # empty for the build, the host's leftovers unseen
        assert not Path(f"/dev/shm/{marker}").exists()
        assert not (mountpoint / "inside").exists()
        assert str(mountpoint) not in Path("/proc/mounts").read_text()
    finally:
        left_before.unlink()


def test_a_build_without_namespaces_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a build's namespace already (a nested build.py), the body runs as it is."""
    monkeypatch.setenv("EWINDOW_PID_NAMESPACE", "1")
    assert run_isolated(lambda: 7) == 7


def test_an_interrupted_steps_stragglers_are_stopped_before_its_files_go(tmp_path: Path) -> None:
    """The storm's leftover .img.partial (CI, 2026-12-03): a command started just as the signal
    came was not stopped by runner.run and wrote the file after the clean-up deleted it. The
    clean-up now stops every process the builder started first, in their own sessions too,
    and one that ignores SIGTERM is killed after the grace."""
    late = tmp_path / "late.partial"
    stubborn = subprocess.Popen(["sh", "-c", f"trap '' TERM; sleep 1; touch {late}.stubborn; sleep 30"],
                                start_new_session=True)
    writer = subprocess.Popen(["sh", "-c", f"sleep 1; touch {late}"], start_new_session=True)
    time.sleep(0.2)
    stopped = stop_descendants(grace=0.5)
    assert {stubborn.pid, writer.pid} <= set(stopped)
    time.sleep(1.5)
    assert not late.exists() and not Path(f"{late}.stubborn").exists()
    assert stubborn.wait(5) == -signal.SIGKILL and writer.wait(5) == -signal.SIGTERM
    assert descendants(os.getpid()) == []
