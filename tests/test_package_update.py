# SPDX-License-Identifier: MIT
"""A booted window upgrades itself from the deployment's repository (README "Updates"), and
a new kernel leaves a card that boots, even when the power is cut while dpkg installs it.

The image (one for the module's tests, each boots its own copy) is built with
``updates.repo`` pointing at a repository this host serves (qemu forwards the guest's
10.0.2.100:80 to it; the guest reaches nothing else). The repository
holds ewindow-agent version N+1: a copy of the checkout whose agent says so in its journal,
published by ``build.py repo`` with the deployment's key. On the booted window:

1. the repository is down: the run fails, says why in upgrade.json, and the window keeps
   agent N, running;
2. the repository is up: the run installs N+1, the agent is restarted with the new code;
3. the window boots again to EWINDOW-BOOT-OK, and the boot report says the last run was ok.

Debian's mirror is out of reach in the guest, so its sources are moved aside first: the
result then says what the deployment repository did.

The kernel: the newest self-contained kernel of Debian's backports (tests/debian_kernel.py),
published signed into the deployment repository, installed by apt on the booted window. The
power is cut (qemu stopped) while dpkg unpacks it; the next boot finishes the install
(ewindow-dpkg-recover.service), whose hooks regenerate the initramfs with the image's module
list and copy kernel and initrd to the FAT; the card then boots the new kernel on virt, with
cmdline.txt and the rest of config.txt as they were.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ewindow_image.fleet import repokey
from ewindow_image.packages import repository
from ewindow_image.packages.versioning import STAMP
from ewindow_image.pipeline.cache import default_cache_dir
from ewindow_image.pipeline.driver import RepoPaths
from ewindow_image.qemu.boottest import BootSpec, boot, firmware_boot_files

from .conftest import MIB, REPO, Built, requires_root, seeded_cache, share_snapshots
from .debian_kernel import backports_kernel
from .test_built_image import free_port

pytestmark = [pytest.mark.slow, requires_root]
MARKER = "ewindow-agent upgrade test: version N+1 runs"
GUEST_REPO = "10.0.2.100"
RELAY = Path(__file__).with_name("tcp_relay.py")
MAC = "b8:27:eb:27:35:ee"
GIB = 1024 * MIB


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


@dataclass(frozen=True)
class UpdatesImage:
    """An image built with ``updates.repo`` at the guest's view of this host's server."""

    image: Path
    site: Path
    cache: Path
    deployment: Path
    hour: int  # the update window is hour:00 to hour+1:00

    def copy_to(self, folder: Path) -> Path:
        target = folder / self.image.name
        subprocess.run(["cp", "--sparse=always", str(self.image), str(target)], check=True)
        return target


@pytest.fixture(scope="module")
def updates_image(built: Built, tmp_path_factory: pytest.TempPathFactory) -> UpdatesImage:
    tmp = tmp_path_factory.mktemp("updates")
    deployment = tmp / "net"
    assert build_py(REPO, "network", "init", str(deployment)).returncode == 0
    # an update window twelve hours away: the timer never fires during the test
    hour = (datetime.datetime.now().hour + 12) % 24
    site = tmp / "site.yaml"
    site.write_text(json.dumps({
        "admin": {"authorized_keys": [built.public_key]},
        "image": {"compression": ["zstd"], "zstd_level": 1},
        "secrets_file": str(deployment / "secrets.yaml"),
        "updates": {"repo": f"http://{GUEST_REPO}/repo",
                    "window": f"{hour:02d}:00-{(hour + 1) % 24:02d}:00"},
    }))
    cache = seeded_cache(tmp)
    out = tmp / "out"
    result = build_py(REPO, "build", "-c", str(site), "--cache-dir", str(cache), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    share_snapshots(cache)
    assert "==> stage 45-extra: cached" in result.stderr  # only the updates stage and later differ
    return UpdatesImage(out / f"{built.stem}.img", site, cache, deployment, hour)


def ssh_argv(ssh_port: int, built: Built) -> list[str]:
    return ["ssh", "-p", str(ssh_port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o", "BatchMode=yes",
            "-i", str(built.private_key), "-o", "IdentitiesOnly=yes", "ewindow@127.0.0.1"]


class Guest:
    """Commands on the booted window over the forwarded SSH port; what each said (stdout)
    and how long it took, kept under a name."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.seen: dict[str, str] = {}

    def __call__(self, name: str, command: str) -> str:
        started = time.monotonic()
        self.seen[name] = subprocess.run([*self.argv, command], capture_output=True, text=True,
                                         timeout=900, check=False).stdout
        self.seen[f"{name} seconds"] = f"{time.monotonic() - started:.0f}"
        return self.seen[name]


def test_a_window_upgrades_its_agent_from_the_deployment_repository(
        built: Built, updates_image: UpdatesImage, tmp_path: Path, server: Server) -> None:
    site, cache = updates_image.site, updates_image.cache
    image = updates_image.copy_to(tmp_path)

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
    guest = Guest(ssh_argv(ssh_port, built))
    seen = guest.seen

    state = ("sudo systemctl start apt-daily-upgrade.service; echo service $?; "
             "cat /var/lib/ewindow/upgrade.json; echo; "
             "dpkg-query -W -f='agent ${Version}\\n' ewindow-agent; "
             "systemctl is-active ewindow-agent.service")

    def upgrade() -> None:
        guest("before", "sudo mv /etc/apt/sources.list /root/debian.sources.off; "
                        "dpkg-query -W -f='agent ${Version}\\n' ewindow-agent; ls /var/lib/ewindow/; "
                        "systemctl show -p TimersCalendar -p RandomizedDelayUSec -p FixedRandomDelay "
                        "-p Persistent apt-daily-upgrade.timer; "
                        "date -d \"$(systemctl show -P NextElapseUSecRealtime apt-daily-upgrade.timer)\" "
                        "+next=%H:%M")
        guest("down", state)  # nothing listens behind the forwarded address yet
        server.start()
        guest("up", state + "; sudo journalctl -b --no-pager -u ewindow-agent.service | tail -n 20; "
                            "sudo journalctl -b --no-pager -u apt-daily-upgrade.service | tail -n 30")
        guest("idle", state)  # nothing left to do: how long a night's run takes

    first = boot(image, spec, while_up=upgrade, in_place=True)
    (tmp_path / "guest.log").write_text(json.dumps(seen, indent=2))
    assert first.report["upgrade"] == "none", first.report  # nothing ran before the test did
    assert f"agent {old}" in seen["before"] and "firstboot.done" in seen["before"], seen["before"]
    # the timer as systemd read the image's drop-in: the window's start, spread over the
    # window but its last half hour, the same moment every night, not caught up at boot
    timer = seen["before"]
    assert f"OnCalendar=*-*-* {updates_image.hour:02d}:00:00 ;" in timer, timer
    assert "RandomizedDelayUSec=30min\n" in timer and "FixedRandomDelay=yes\n" in timer, timer
    assert "Persistent=no\n" in timer, timer
    assert f"next={updates_image.hour:02d}:" in timer, timer

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


def config_txt_settings(config_txt: str) -> list[str]:
    """config.txt without the kernel's and initrd's names (which a new kernel changes)."""
    return [line for line in config_txt.splitlines()
            if not line.startswith(("kernel=", "initramfs "))]


def test_a_new_kernel_installed_by_apt_boots_even_after_a_power_cut_during_its_install(
        built: Built, updates_image: UpdatesImage, tmp_path: Path, server: Server) -> None:
    kernel = backports_kernel(default_cache_dir(), "trixie")
    image = updates_image.copy_to(tmp_path)
    home, _ = repokey.paths(updates_image.deployment)
    with repokey.gnupg_home(home) as alias:
        repository.publish(server.folder / "repo", alias, repokey.fingerprint(alias),
                           [repository.Distribution("trixie", ("arm64",), (kernel.deb,))])
    server.start()
    before = {name: built.boot_file(name).decode() for name in ("cmdline.txt", "config.txt")}

    ssh_port = free_port()
    spec = BootSpec(machine="virt", timeout=300, mac=MAC, ssh_port=ssh_port, grow_bytes=GIB,
                    guestfwd=f"tcp:{GUEST_REPO}:80-cmd:{sys.executable} {RELAY} {server.port}")
    guest = Guest(ssh_argv(ssh_port, built))
    modules = f"/usr/lib/modules/{kernel.release}/kernel"
    state = (f"dpkg-query -W -f='status: ${{db:Status-Abbrev}}${{Version}}\\n' {kernel.package}; "
             "echo audit: $(sudo dpkg --audit | head -n 3)")

    def install_and_cut_the_power() -> None:
        # apt as unattended-upgrade runs it: the .deb is downloaded first, then dpkg unpacks it;
        # a transient unit, so that the SSH session can end while it runs
        guest("cut", "sudo mv /etc/apt/sources.list /root/debian.sources.off && sudo apt-get -q update "
                     "&& sudo systemd-run --quiet --unit=kernel-install "
                     "--setenv=DEBIAN_FRONTEND=noninteractive "
                     f"apt-get -q -y install {kernel.package} && "
                     f"for i in $(seq 2400); do [ -d {modules} ] && break; "
                     "systemctl is-active --quiet kernel-install || break; sleep 0.25; done; "
                     f"sleep 1; {state}; ls /var/cache/apt/archives/; "
                     "journalctl --no-pager -u kernel-install | tail -n 20")
        # returning stops qemu at once (SIGTERM): the guest's unwritten pages are lost

    first = boot(image, spec, while_up=install_and_cut_the_power, in_place=True)
    old_release = first.report["kernel"]
    assert old_release != kernel.release, first.report
    cut = guest.seen["cut"]
    assert "\nstatus: iH" in cut or "\nstatus: iU" in cut, cut  # dpkg was at work on it
    assert "\naudit:\n" not in cut, cut  # and said so
    assert kernel.deb.name.replace("~", "%7e") in cut or kernel.deb.name in cut, cut

    def after_the_power_cut() -> None:
        guest("recovered", f"{state}; sudo journalctl -b --no-pager -u ewindow-dpkg-recover.service "
                           "| tail -n 15; cat /boot/firmware/config.txt; "
                           f"ls -l /boot/firmware/vmlinuz-* /boot/firmware/initrd.img-*; "
                           f"sudo lsinitramfs /boot/initrd.img-{kernel.release} | grep -c -E "
                           "'/(virtio_blk|sdhci-iproc|ext4)\\.ko'; sync")

    second = boot(image, BootSpec(machine="virt", timeout=900, mac=MAC, ssh_port=ssh_port),
                  while_up=after_the_power_cut, in_place=True)
    (tmp_path / "guest.log").write_text(json.dumps(guest.seen, indent=2))
    recovered = guest.seen["recovered"]
    # the old kernel still booted (the cut came before the hooks); the install was finished
    assert second.report["kernel"] == old_release and second.report["dpkg"] == "ok", second.report
    assert recovered.startswith(f"status: ii {kernel.version}\naudit:\n"), recovered
    assert "Finished" in recovered and "ewindow-dpkg-recover.service" in recovered, recovered
    assert recovered.rstrip().endswith("\n3"), recovered  # the image's MODULES=list initramfs

    # on the card: the hooks' files, and the project's settings as they were
    card = Built(image.parent, built.site, built.public_key, image.stem)
    after = {name: card.boot_file(name).decode() for name in ("cmdline.txt", "config.txt")}
    assert firmware_boot_files(after["config.txt"]) == (f"vmlinuz-{kernel.release}",
                                                        f"initrd.img-{kernel.release}"), after
    assert after["cmdline.txt"] == before["cmdline.txt"]
    assert config_txt_settings(after["config.txt"]) == config_txt_settings(before["config.txt"])
    assert len(card.boot_file(f"initrd.img-{kernel.release}")) < 20 * MIB

    third = boot(image, BootSpec(machine="virt", timeout=300, mac=MAC), in_place=True)
    assert third.report["kernel"] == kernel.release and third.report["dpkg"] == "ok", third.report
    # Not on raspi3b: qemu 7.2's Pi 3 runs this kernel so slowly that systemd gave up waiting
    # for the FAT partition's device (90 s) and the boot ended in emergency mode.
    print(f"kernel {old_release} → {kernel.release}: power cut during the install "
          f"({guest.seen['cut seconds']} s in), finished at the next boot "
          f"({second.seconds:.0f} s to the report); boots on virt in {third.seconds:.0f} s")
