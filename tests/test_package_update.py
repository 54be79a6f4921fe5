# SPDX-License-Identifier: MIT
"""A booted window upgrades itself from the deployment's repository (README "Updates").

The image is built with ``updates.repo`` pointing at a repository this host serves (qemu
forwards the guest's 10.0.2.100:80 to it; the guest reaches nothing else). The repository
holds ewindow-agent version N+1: a copy of the checkout whose agent says so in its journal,
published by ``build.py repo`` with the deployment's key. On the booted window:

1. the repository is down: the run fails, says why in upgrade.json, and the window keeps
   agent N, running;
2. the repository is up: the run installs N+1, the agent is restarted with the new code;
3. the window boots again to EWINDOW-BOOT-OK, and the boot report says the last run was ok.

Debian's mirror is out of reach in the guest, so its sources are moved aside first: the
result then says what the deployment repository did.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ewindow_image.packages.versioning import STAMP
from ewindow_image.pipeline.driver import RepoPaths
from ewindow_image.qemu.boottest import BootSpec, boot

from .conftest import REPO, Built, requires_root, seeded_cache, share_snapshots
from .test_built_image import free_port

pytestmark = [pytest.mark.slow, requires_root]
MARKER = "ewindow-agent upgrade test: version N+1 runs"
GUEST_REPO = "10.0.2.100"
RELAY = Path(__file__).with_name("tcp_relay.py")
MAC = "b8:27:eb:27:35:ee"


def build_py(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(checkout / "build.py"), *args], capture_output=True,
                          text=True, check=False)


class Server:
    """``python3 -m http.server`` on the loopback, started and stopped by the test."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                         str(self.port)], cwd=self.folder, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "www").mkdir()
    served = Server(tmp_path / "www")
    yield served
    served.stop()


def test_a_window_upgrades_its_agent_from_the_deployment_repository(built: Built, tmp_path: Path,
                                                                    server: Server) -> None:
    deployment = tmp_path / "net"
    assert build_py(REPO, "network", "init", str(deployment)).returncode == 0
    # an update window twelve hours away: the timer never fires during the test
    hour = (datetime.datetime.now().hour + 12) % 24
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({
        "admin": {"authorized_keys": [built.public_key]},
        "image": {"compression": ["zstd"], "zstd_level": 1},
        "secrets_file": str(deployment / "secrets.yaml"),
        "updates": {"repo": f"http://{GUEST_REPO}/repo",
                    "window": f"{hour:02d}:00-{(hour + 1) % 24:02d}:00"},
    }))
    cache = seeded_cache(tmp_path)
    out = tmp_path / "out"
    result = build_py(REPO, "build", "-c", str(site), "--cache-dir", str(cache), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    share_snapshots(cache)
    assert "==> stage 45-extra: cached" in result.stderr  # only the updates stage and later differ
    image = out / f"{built.stem}.img"

    # version N+1: a copy of the checkout whose agent announces itself, published signed
    checkout = RepoPaths(REPO).copy_to(tmp_path / "checkout").root
    versions = json.loads((checkout / STAMP).read_text())
    old, new = versions["ewindow-agent"], versions["ewindow-agent"] + ".1"
    (checkout / STAMP).write_text(json.dumps({**versions, "ewindow-agent": new}))
    with (checkout / "hardware/__init__.py").open("a") as f:
        f.write(f"\nimport sys\nprint({MARKER!r}, file=sys.stderr, flush=True)\n")
    published = build_py(checkout, "repo", "-c", str(site), "--out", str(server.folder / "repo"),
                         "--allow-dirty", "--cache-dir", str(cache))
    assert published.returncode == 0, published.stderr[-3000:]
    assert f"ewindow-agent_{new}_all.deb" in published.stdout

    ssh_port = free_port()
    spec = BootSpec(machine="virt", timeout=300, mac=MAC, ssh_port=ssh_port,
                    guestfwd=f"tcp:{GUEST_REPO}:80-cmd:{sys.executable} {RELAY} {server.port}")
    ssh = ["ssh", "-p", str(ssh_port), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null",
           "-o", "ConnectTimeout=20", "-o", "BatchMode=yes", "-i", str(built.private_key),
           "-o", "IdentitiesOnly=yes", "ewindow@127.0.0.1"]
    seen: dict[str, str] = {}

    def guest(name: str, command: str) -> None:
        started = time.monotonic()
        seen[name] = subprocess.run([*ssh, command], capture_output=True, text=True, timeout=900,
                                    check=False).stdout
        seen[f"{name} seconds"] = f"{time.monotonic() - started:.0f}"

    state = ("sudo systemctl start apt-daily-upgrade.service; echo service $?; "
             "cat /var/lib/ewindow/upgrade.json; echo; "
             "dpkg-query -W -f='agent ${Version}\\n' ewindow-agent; "
             "systemctl is-active ewindow-agent.service")

    def upgrade() -> None:
        guest("before", "sudo mv /etc/apt/sources.list /root/debian.sources.off; "
                        "dpkg-query -W -f='agent ${Version}\\n' ewindow-agent; ls /var/lib/ewindow/")
        guest("down", state)  # nothing listens behind the forwarded address yet
        server.start()
        guest("up", state + "; sudo journalctl -b --no-pager -u ewindow-agent.service | tail -n 20; "
                            "sudo journalctl -b --no-pager -u apt-daily-upgrade.service | tail -n 30")
        guest("idle", state)  # nothing left to do: how long a night's run takes

    first = boot(image, spec, while_up=upgrade, in_place=True)
    (tmp_path / "guest.log").write_text(json.dumps(seen, indent=2))
    assert first.report["upgrade"] == "none", first.report  # nothing ran before the test did
    assert f"agent {old}" in seen["before"] and "firstboot.done" in seen["before"], seen["before"]

    down = seen["down"]
    assert "service 0" not in down, down  # the unit says the run failed
    outcome = json.loads(down[down.index("{"):down.index("}") + 1])
    assert outcome["result"] == "failed" and outcome["lists"].startswith("apt-get update failed"), outcome
    assert GUEST_REPO in outcome["lists"], outcome
    assert f"agent {old}" in down and down.rstrip().endswith("active"), down  # running as before

    up = seen["up"]
    outcome = json.loads(up[up.index("{"):up.index("}") + 1])
    assert "service 0" in up and outcome["result"] == "ok", up
    assert outcome["reboot"] == "not needed", outcome
    assert f"agent {new}" in up, up
    assert MARKER in up, up  # the agent was restarted with the new code
    assert "\nactive\n" in up, up

    idle = seen["idle"]
    outcome = json.loads(idle[idle.index("{"):idle.index("}") + 1])
    assert "service 0" in idle and outcome["result"] == "ok" and f"agent {new}" in idle, idle

    again = boot(image, BootSpec(machine="virt", timeout=300, mac=MAC), in_place=True)
    assert again.report["upgrade"] == "ok" and again.report["agent"] == "active", again.report
    print(f"upgrade runs in the VM: failed in {seen['down seconds']} s, "
          f"installed N+1 in {seen['up seconds']} s, nothing to do in {seen['idle seconds']} s")
