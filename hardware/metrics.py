# SPDX-License-Identifier: MIT
"""The agent's Prometheus metrics, as a file for the node exporter's textfile collector
(README "Watching the fleet").

Why a file and not a server in the agent: the node exporter, which the window runs anyway for
uptime, free space and memory, serves it on the VPN addresses only (ewindow-metrics.socket),
and the agent stays at its size: writing ~1 KiB every few seconds costs it nothing, where an
HTTP server (http.server, or python3-prometheus-client on top) added 10-14 MiB of imports to
its ~27 MiB on this host. The exposition format:
https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format; the
textfile convention (write a temporary file, rename it into place):
https://github.com/prometheus/node_exporter#textfile-collector
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .state import State

TEXTFILE_DIR = Path("/run/ewindow/metrics")  # tmpfiles.d: the agent's group may write
UPGRADE_STATE = Path("/var/lib/ewindow/upgrade.json")  # the last upgrade run (updates/upgrade.py)
AGENT_FILE = "ewindow_agent.prom"
DPKG_STATUS = Path("/var/lib/dpkg/status")
OWN_PACKAGES = ("ewindow-agent", "ewindow-firstboot", "ewindow-updates", "peervpn", "cjdns")


def _label(value: str) -> str:
    """A label value, escaped as the text format wants (backslash, quote, new line)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """Every digit (a timestamp of 1764645660 is not 1.76465e+09)."""
    return str(int(value)) if value.is_integer() else repr(value)


def _family(name: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        inside = ",".join(f'{key}="{_label(text)}"' for key, text in labels.items())
        lines.append(f"{name}{{{inside}}} {_number(value)}" if inside else f"{name} {_number(value)}")
    return lines


def exposition(state: str, firstboot: str, peers: Mapping[str, int | None], hubs: Mapping[str, int],
               mac_conflict: bool, versions: Mapping[str, str], upgrade: Mapping[str, object]) -> str:
    """The agent's metrics: the LED's state (1 for the one shown), windows and hubs reached per
    VPN backend (windows -1: the backend cannot say), a station using tap0's MAC, firstboot
    done, the versions of the project's packages, and the last upgrade run's end and result
    (none before the first run)."""
    lines = _family("ewindow_led_state", "The state the status LED shows (1) and the others (0).",
                    (({"state": s.value}, 1.0 if s.value == state else 0.0) for s in State))
    lines += _family("ewindow_vpn_peers", "Other windows each VPN backend this window runs reaches now, "
                     "hubs apart; -1 when it cannot say.",
                     (({"backend": b}, float(-1 if n is None else n)) for b, n in sorted(peers.items())))
    lines += _family("ewindow_vpn_hubs", "Hubs that answer over each VPN backend this window runs.",
                     (({"backend": b}, float(n)) for b, n in sorted(hubs.items())))
    lines += _family("ewindow_tap_mac_conflict", "1 when another station answers as this window on "
                     "tap0 (its MAC): on PeerVPN's switch it takes this window's traffic.",
                     [({}, 1.0 if mac_conflict else 0.0)])
    lines += _family("ewindow_firstboot_done", "1 when firstboot has made this card into a window.",
                     [({}, 1.0 if firstboot == "done" else 0.0)])
    lines += _family("ewindow_package_info", "The installed version of each of the project's packages.",
                     (({"package": p, "version": v}, 1.0) for p, v in sorted(versions.items())))
    finished = upgrade.get("finished")
    if isinstance(finished, int) and not isinstance(finished, bool):
        lines += _family("ewindow_upgrade_last_run_timestamp_seconds", "When the last unattended upgrade "
                         "run ended (seconds since 1970).", [({}, float(finished))])
        lines += _family("ewindow_upgrade_last_run_success", "1 when the last unattended upgrade run "
                         "succeeded, 0 when apt-get update or unattended-upgrade failed.",
                         [({}, 1.0 if upgrade.get("result") == "ok" else 0.0)])
    return "\n".join(lines) + "\n"


def last_upgrade(path: Path = UPGRADE_STATE) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def installed_versions(status: Path = DPKG_STATUS, packages: Iterable[str] = OWN_PACKAGES) -> dict[str, str]:
    """The versions dpkg has installed of ``packages``, from its status file, read without
    dpkg: line by line, and again only when the file changed (it is ~1 MiB; reading it whole
    every few seconds would keep that much more in the agent)."""
    try:
        info = status.stat()
    except OSError:
        return {}
    return dict(_read_versions(str(status), info.st_mtime_ns, info.st_size, frozenset(packages)))


@functools.lru_cache(maxsize=1)
def _read_versions(status: str, mtime_ns: int, size: int, wanted: frozenset[str]) -> dict[str, str]:
    """``installed_versions`` for one state of the file (its time and size are the cache key)."""
    found: dict[str, str] = {}
    name = version = state = ""
    try:
        with open(status, errors="replace") as lines:
            for line in itertools.chain(lines, ["\n"]):  # the last stanza may end without one
                if line == "\n":
                    if name in wanted and state.endswith(" installed"):
                        found[name] = version
                    name = version = state = ""
                elif line.startswith("Package: "):
                    name = line[9:].strip()
                elif name in wanted and line.startswith("Version: "):
                    version = line[9:].strip()
                elif name in wanted and line.startswith("Status: "):
                    state = line[8:].strip()
    except OSError:
        return {}
    return found


def write(text: str, directory: Path = TEXTFILE_DIR, name: str = AGENT_FILE) -> None:
    """Into place by rename, so the exporter never reads half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, directory / name)
