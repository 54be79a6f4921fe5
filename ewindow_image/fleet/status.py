# SPDX-License-Identifier: MIT
"""``build.py fleet status``: one table of the fleet, scraped directly (README "Watching the
fleet"), for a deployment too small to run Prometheus. Run it where the VPN reaches the
windows (the hub, or an admin's machine in the mesh).

Each window's metrics come from its node exporter on its VPN address (exports.vpn_address),
parsed with prometheus-client's parser of the text format; what is shown is what the window
says, nothing is inferred.
"""

from __future__ import annotations

import datetime
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from firstboot.files import METRICS_PORT

from .exports import vpn_address
from .registry import Host

MAX_BYTES = 4 << 20  # a window's metrics are ~30 KiB
Fetch = Callable[[str, float], str]


@dataclass(frozen=True)
class WindowStatus:
    name: str
    address: str
    reachable: str  # "yes", or why not
    led: str = ""
    peers: str = ""  # "peervpn 2, cjdns 1"
    version: str = ""  # ewindow-agent's
    last_upgrade: str = ""  # "ok 2026-12-02 03:41 UTC", "failed …", "never"


def fetch(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http:// to a window)
        return str(response.read(MAX_BYTES).decode("utf-8", errors="replace"))


def summarise(name: str, address: str, text: str) -> WindowStatus:
    """The table's row from a window's metrics."""
    led, versions, success, finished = "", {}, None, None
    peers: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ewindow_led_state" and sample.value == 1:
                led = sample.labels.get("state", "")
            elif sample.name == "ewindow_vpn_peers":
                peers[sample.labels.get("backend", "?")] = sample.value
            elif sample.name == "ewindow_package_info":
                versions[sample.labels.get("package", "")] = sample.labels.get("version", "")
            elif sample.name == "ewindow_upgrade_last_run_success":
                success = sample.value == 1
            elif sample.name == "ewindow_upgrade_last_run_timestamp_seconds":
                finished = sample.value
    when = (datetime.datetime.fromtimestamp(finished, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
            if finished is not None else "")
    upgrade = "never" if success is None else f"{'ok' if success else 'failed'} {when}".strip()
    shown_peers = ", ".join(f"{b} {'?' if n < 0 else int(n)}" for b, n in sorted(peers.items()))
    return WindowStatus(name, address, "yes", led or "?", shown_peers or "-",
                        versions.get("ewindow-agent", "?"), upgrade)


def scrape(host: Host, backends: Sequence[str], timeout: float, get: Fetch = fetch) -> WindowStatus:
    address = vpn_address(host, backends)
    try:
        text = get(f"http://[{address}]:{METRICS_PORT}/metrics", timeout)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        return WindowStatus(host.hostname, address, f"no: {reason}"[:60])
    try:
        return summarise(host.hostname, address, text)
    except ValueError as exc:  # not the text format
        return WindowStatus(host.hostname, address, f"no: not metrics ({str(exc)[:40]})")


def statuses(hosts: Sequence[Host], backends: Sequence[str], timeout: float = 5.0,
             get: Fetch = fetch) -> list[WindowStatus]:
    """Every window at once (a down window costs ``timeout``, not the sum of them)."""
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(hosts)))) as pool:
        return list(pool.map(lambda h: scrape(h, backends, timeout, get), hosts))
