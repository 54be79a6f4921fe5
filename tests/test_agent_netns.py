# SPDX-License-Identifier: MIT
"""The agent process in a network namespace with a veth "cable": pulling it shows "no link"
within the debounce time, plugging it back shows the next state at once. Real rtnetlink,
real sysfs; only the LED pin is gpiozero's mock."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import requires_root

pytestmark = [pytest.mark.slow, requires_root]
REPO = Path(__file__).resolve().parent.parent
DEBOUNCE = 2.0


@pytest.fixture
def cable() -> Iterator[tuple[str, str]]:
    """A namespace for the window and one for the switch, joined by a veth pair."""
    tag = f"ewa{os.getpid() % 10000}"
    window, switch = f"{tag}-win", f"{tag}-sw"
    for ns in (window, switch):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "link", "add", "veth0", "netns", window, "type", "veth", "peer", "name", "veth1",
                    "netns", switch], check=True)
    subprocess.run(["ip", "-n", window, "addr", "add", "192.0.2.2/24", "dev", "veth0"], check=True)
    for ns, dev in ((window, "veth0"), (switch, "veth1")):
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
    yield window, switch
    for ns in (window, switch):
        subprocess.run(["ip", "netns", "del", ns], check=False)


def wait_for_line(lines: list[str], stream: object, pattern: str, seconds: float) -> float:
    start = time.monotonic()
    regex = re.compile(pattern)
    while time.monotonic() - start < seconds:
        line = stream.readline()  # type: ignore[attr-defined]
        if line:
            lines.append(line)
            if regex.search(line):
                return time.monotonic() - start
    raise AssertionError(f"no line matching {pattern!r} within {seconds} s:\n{''.join(lines)}")


def test_pulling_the_cable_changes_the_led_state(cable: tuple[str, str], tmp_path: Path) -> None:
    window, switch = cable
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"led": {"kind": "single", "pins": [17]}, "button": {"pin": 3},
                                  "probe": {"interfaces": ["veth0"], "internet_url": "http://192.0.2.1:9/",
                                            "link_down_debounce_s": DEBOUNCE, "interval_s": 3600}}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
    agent = subprocess.Popen(["ip", "netns", "exec", window, sys.executable, "-m", "hardware", "--config",
                              str(config), "--metrics-dir", str(tmp_path / "metrics")], env=env,
                             stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        # cable in, an address, no Internet in the namespace
        wait_for_line(lines, agent.stderr, r"state: (no-internet|clock)", 15)
        pulled = time.monotonic()
        subprocess.run(["ip", "-n", switch, "link", "set", "veth1", "down"], check=True)
        wait_for_line(lines, agent.stderr, r"state: no-link", DEBOUNCE + 3)
        seconds = time.monotonic() - pulled
        assert seconds >= DEBOUNCE - 0.1  # not before the debounce
        print(f"cable pulled: no-link shown after {seconds:.2f} s (debounce {DEBOUNCE} s)")
        plugged = time.monotonic()
        subprocess.run(["ip", "-n", switch, "link", "set", "veth1", "up"], check=True)
        # the next probe is an hour away (interval_s): only the link event can show it
        wait_for_line(lines, agent.stderr, r"state: (no-internet|clock)", 60)
        seconds = time.monotonic() - plugged
        print(f"cable back: shown after {seconds:.2f} s")
        time.sleep(6)  # the metrics file follows within METRICS_S (5 s)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    assert agent.returncode == 0  # SIGTERM is a clean stop
    # the metrics for the node exporter say what the LED says, in a format promtool accepts
    assert agent.stderr is not None
    logged = set(re.findall(r"state: ([a-z-]+)", "".join(lines) + agent.stderr.read()))
    text = (tmp_path / "metrics/ewindow_agent.prom").read_text()
    shown = re.findall(r'ewindow_led_state\{state="([a-z-]+)"\} 1\n', text)
    assert len(shown) == 1 and shown[0] in logged, (shown, logged)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
