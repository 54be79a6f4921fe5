#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The status agent's cost and reaction time, with gpiozero's mock pins in a network namespace.

- idle: RSS and CPU of the agent over ``--seconds`` (default 60) with its link up and nothing
  changing, against a bare ``python3`` that sleeps (the baseline, same run);
- link: seconds from pulling the veth "cable" to the agent's "state: no-link" line (the
  debounce is the baseline) and from plugging it back to the next state line, ``--rounds``
  times.

Run as root (network namespaces): ``bench/agent.py``. Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBOUNCE = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of ``pid`` and its children so far."""
    rss = (
        next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        / 1024
    )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS  # utime stime cutime cstime
    return rss, cpu


def python_pid(launcher: subprocess.Popen[str]) -> int:
    """``ip netns exec`` execs the program, so the launcher's pid is the agent's."""
    return launcher.pid


def idle(argv: list[str], seconds: float, env: dict[str, str]) -> tuple[float, float]:
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    time.sleep(3)  # start-up is not idling
    _, cpu_before = usage(python_pid(process))
    time.sleep(seconds)
    rss, cpu_after = usage(python_pid(process))
    process.terminate()
    process.wait()
    return rss, cpu_after - cpu_before


def wait_line(stream: object, word: str, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        line = stream.readline()  # type: ignore[attr-defined]
        if word in line:
            return time.monotonic()
    raise RuntimeError(f"no '{word}' within {limit} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    window, switch = "ewbench-win", "ewbench-sw"
    for ns in (window, switch):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)
        sh("ip", "netns", "add", ns)
    try:
        sh(
            "ip",
            "link",
            "add",
            "veth0",
            "netns",
            window,
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            switch,
        )
        sh("ip", "-n", window, "addr", "add", "192.0.2.2/24", "dev", "veth0")
        sh("ip", "-n", window, "link", "set", "veth0", "up")
        sh("ip", "-n", switch, "link", "set", "veth1", "up")
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "agent.json"
            config.write_text(
                json.dumps(
                    {
                        "led": {"kind": "single", "pins": [17]},
                        "probe": {
                            "interfaces": ["veth0"],
                            "internet_url": "http://192.0.2.1:9/",
                            "link_down_debounce_s": DEBOUNCE,
                            "interval_s": 10,
                        },
                    }
                )
            )
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "GPIOZERO_PIN_FACTORY": "mock",
                "PYTHONUNBUFFERED": "1",
            }
            netns = ["ip", "netns", "exec", window]
            agent = [*netns, sys.executable, "-m", "hardware", "--config", str(config)]
            base_rss, base_cpu = idle(
                [*netns, sys.executable, "-c", "import time; time.sleep(1e6)"], args.seconds, env
            )
            rss, cpu = idle(agent, args.seconds, env)
            process = subprocess.Popen(agent, env=env, stderr=subprocess.PIPE, text=True)
            wait_line(process.stderr, "state: ", 15)
            pulled, plugged = [], []
            for _ in range(args.rounds):
                start = time.monotonic()
                sh("ip", "-n", switch, "link", "set", "veth1", "down")
                pulled.append(wait_line(process.stderr, "state: no-link", DEBOUNCE + 5) - start)
                start = time.monotonic()
                sh("ip", "-n", switch, "link", "set", "veth1", "up")
                plugged.append(wait_line(process.stderr, "state: ", 5) - start)
            process.terminate()
            process.wait()
    finally:
        for ns in (window, switch):
            subprocess.run(["ip", "netns", "del", ns], check=False)
    print("## Status agent (`bench/agent.py`)\n")
    print("| measure | agent | baseline | ratio |\n|---|---|---|---|")
    print(f"| RSS, MiB | {rss:.1f} | {base_rss:.1f} (python3 sleeping) | {rss / base_rss:.2f} |")
    print(
        f"| CPU over {args.seconds:.0f} s idle, s | {cpu:.2f} | {base_cpu:.2f} | "
        f"{cpu / args.seconds * 100:.2f} % of a core |"
    )
    print(
        f"| cable pulled → no-link, s (median of {args.rounds}) | {statistics.median(pulled):.2f} | "
        f"{DEBOUNCE:.2f} (debounce) | {statistics.median(pulled) / DEBOUNCE:.2f} |"
    )
    print(
        f"| cable back → next state, s (median, max) | {statistics.median(plugged):.3f}, {max(plugged):.3f} "
        "| – | – |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
