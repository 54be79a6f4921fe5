# SPDX-License-Identifier: MIT
"""The real thing: build the image with build.py, check the artifacts and what is inside the
image (read without mounting: sfdisk, mtools, debugfs), then boot it under qemu.

Marked slow: ~5 min cold (mmdebstrap under emulation), seconds when the stage cache is warm.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from ewindow_image.boottest import BootSpec, boot
from ewindow_image.config import ConfigLayers, load_config

from .conftest import Built, requires_root, sh

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, requires_root]
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_all_artifacts_are_complete_and_summed(built: Built) -> None:
    names = sorted(p.name for p in built.out.iterdir() if p.is_file())
    assert names == sorted(["SHA256SUMS", f"{built.stem}.img", f"{built.stem}.img.zst",
                            f"{built.stem}.img.xz", f"{built.stem}.img.bmap",
                            f"{built.stem}.manifest", f"{built.stem}.build-info.json"])
    subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=built.out, check=True,
                   capture_output=True)
    listed = {line.split()[1] for line in (built.out / "SHA256SUMS").read_text().splitlines()}
    assert listed == set(names) - {"SHA256SUMS"}


def test_compressed_images_decompress_to_the_image(built: Built) -> None:
    digest = hashlib.sha256(built.image.read_bytes()).hexdigest()
    for tool, suffix in (("zstd", ".img.zst"), ("xz", ".img.xz")):
        data = subprocess.run([tool, "-dc", str(built.path(suffix))], check=True,
                              capture_output=True).stdout
        assert hashlib.sha256(data).hexdigest() == digest, suffix


def test_bmap_flashes_an_identical_card(built: Built, tmp_path: Path) -> None:
    card = tmp_path / "card.img"
    sh("bmaptool", "copy", "--bmap", str(built.path(".img.bmap")), str(built.image), str(card))
    assert sh("cmp", str(built.image), str(card)) == ""
    bmap = built.path(".img.bmap").read_text()
    mapped = int(re.search(r"<MappedBlocksCount>\s*(\d+)", bmap).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"<BlocksCount>\s*(\d+)", bmap).group(1))  # type: ignore[union-attr]
    assert 0 < mapped < total  # the free space is not written to the card


def test_manifest_and_build_info(built: Built) -> None:
    rows = [line.split("\t") for line in built.path(".manifest").read_text().splitlines()]
    packages = {name: (version, arch) for name, version, arch in rows}
    for name in ("linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "openssh-server",
                 "python3-gpiozero", "python3-pyudev", "systemd"):
        assert name in packages
    assert packages["systemd"][1] == "arm64"
    info = built.info
    cfg = load_config(ConfigLayers(built.site))
    assert info["config_digest"] == cfg.digest()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", str(info["git_revision"]))
    stages = info["stages"]
    assert isinstance(stages, list)
    assert [s["name"] for s in stages] == sorted(p.name for p in (REPO / "stages").iterdir())
    assert all(len(s["key"]) == 64 for s in stages)
    assert info["packages"] == len(rows)


def test_boot_partition(built: Built) -> None:
    names = built.boot_names()
    config_txt = built.boot_file("config.txt").decode()
    kernel = re.search(r"^kernel=(\S+)$", config_txt, re.M)
    initrd = re.search(r"^initramfs (\S+)", config_txt, re.M)
    assert kernel and kernel.group(1) in names
    assert initrd and initrd.group(1) in names
    assert "arm_64bit=1" in config_txt
    for needed in ("bootcode.bin", "start.elf", "start4.elf", "fixup.dat", "bcm2837-rpi-3-b.dtb",
                   "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2837-rpi-zero-2-w.dtb"):
        assert needed in names, needed
    cmdline = built.boot_file("cmdline.txt").decode()
    assert "cma=" not in cmdline  # see overlays/boot/etc/default/raspi-firmware.j2
    assert "console=ttyS1,115200" in cmdline
    # Generated once, with the curated module list: small.
    assert len(built.boot_file(initrd.group(1))) < 20 * MIB


def test_root_and_boot_are_found_by_the_same_partuuids(built: Built) -> None:
    cmdline = built.boot_file("cmdline.txt").decode()
    root_arg = re.search(r"\broot=(\S+)", cmdline)
    assert root_arg
    fstab = [line.split() for line in built.root_file("/etc/fstab").splitlines()
             if line.strip() and not line.startswith("#")]
    mounts = {fields[1]: fields[0] for fields in fstab}
    assert mounts["/"] == root_arg.group(1) == "PARTUUID=ee1d0c5e-02"
    assert mounts["/boot/firmware"] == "PARTUUID=ee1d0c5e-01"
    assert json.loads(sh("sfdisk", "--json", str(built.image)))["partitiontable"]["id"] == "0xee1d0c5e"


def test_image_holds_no_machine_identity_or_build_leftovers(built: Built) -> None:
    ssh_dir = built.debugfs("ls /etc/ssh")
    assert "ssh_host_" not in ssh_dir
    assert built.root_file("/etc/machine-id") == ""
    for leftover in ("/etc/apt/apt.conf.d/99mmdebstrap", "/usr/sbin/policy-rc.d",
                     "/usr/bin/qemu-aarch64-static", "/usr/sbin/update-initramfs.distrib"):
        assert not built.exists(leftover), leftover
    assert built.root_file("/etc/hostname") == "ewindow\n"


def test_access_is_by_key_only(built: Built) -> None:
    shadow = {line.split(":")[0]: line.split(":")[1]
              for line in built.root_file("/etc/shadow").splitlines()}
    assert shadow["root"].startswith(("!", "*"))
    assert shadow["ewindow"].startswith(("!", "*"))
    keys = "/home/ewindow/.ssh/authorized_keys"
    assert built.root_file(keys).strip() == built.public_key
    stat = built.debugfs(f"stat {keys}")
    uid = next(line.split(":")[2] for line in built.root_file("/etc/passwd").splitlines()
               if line.startswith("ewindow:"))
    assert "Mode:  0600" in stat and re.search(rf"User:\s+{uid}\b", stat)
    sshd = built.root_file("/etc/ssh/sshd_config.d/ewindow.conf")
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin no" in sshd
    assert "ewindow ALL=(ALL:ALL) NOPASSWD: ALL" in built.root_file("/etc/sudoers.d/ewindow-admin")


@pytest.mark.boot
def test_boots_on_qemu_virt_and_grows_the_root(built: Built) -> None:
    _, root_offset = built.partitions()
    root_size_kib = (built.image.stat().st_size - root_offset) // 1024
    port = free_port()
    key = built.private_key
    ssh = ["ssh", "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "ConnectTimeout=20", "-o", "BatchMode=yes"]
    seen: dict[str, subprocess.CompletedProcess[str]] = {}

    def log_in() -> None:
        seen["key"] = subprocess.run([*ssh, "-i", str(key), "-o", "IdentitiesOnly=yes", "ewindow@127.0.0.1",
                                      "sudo -n id -u && cat /etc/ssh/ssh_host_ed25519_key.pub"],
                                     capture_output=True, text=True, timeout=120, check=False)
        seen["password"] = subprocess.run([*ssh, "-o", "PubkeyAuthentication=no",
                                           "-o", "PreferredAuthentications=password,keyboard-interactive",
                                           "ewindow@127.0.0.1", "true"],
                                          capture_output=True, text=True, timeout=60, check=False)

    result = boot(built.image, BootSpec(machine="virt", timeout=300, grow_bytes=512 * MIB, ssh_port=port),
                  while_up=log_in)
    # SSH by key works, sudo needs no password, the host key was made on this boot
    assert seen["key"].returncode == 0, seen["key"].stderr
    assert seen["key"].stdout.splitlines()[0] == "0"
    assert seen["key"].stdout.splitlines()[1].startswith("ssh-ed25519 ")
    # and nothing else is offered
    assert seen["password"].returncode == 255
    assert "Permission denied (publickey)" in seen["password"].stderr
    report = result.report
    assert report["multi_user"] == "active"
    assert report["hostname"] == "ewindow"
    assert report["ssh"] == "active" and report["networkd"] == "active"
    assert report["growroot"] == "active"
    assert re.fullmatch(r"[0-9a-f]{32}", report["machine_id"])
    # the card was 512 MiB larger than the image: the root filesystem grew into it
    assert int(report["root_kib"]) > root_size_kib + 400 * 1024
    assert "10.0.2.15/24" in report["addresses"]  # DHCP from qemu's user network
    assert report["kernel"] == built.info["image"]["kernel"]  # type: ignore[index]


@pytest.mark.boot
def test_boots_on_emulated_raspberry_pi_3(built: Built) -> None:
    result = boot(built.image, BootSpec(machine="raspi3b", timeout=400))
    assert "Machine model: Raspberry Pi 3 Model B" in result.console
    assert result.report["ssh"] == "active"
    assert result.report["growroot"] == "active"

