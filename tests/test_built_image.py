# SPDX-License-Identifier: MIT
"""The real thing: build the image with build.py, check the artifacts and what is inside the
image (read without mounting: sfdisk, mtools, debugfs), then boot it under qemu.

Marked slow: ~5 min cold (mmdebstrap under emulation), seconds when the stage cache is warm.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ewindow_image.boottest import BootSpec, boot
from ewindow_image.cache import default_cache_dir
from ewindow_image.config import ConfigLayers, load_config

from .conftest import requires_root

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, requires_root]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Built:
    out: Path
    site: Path
    public_key: str
    stem: str = "ewindow-trixie-arm64"

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.stem}{suffix}"

    @property
    def image(self) -> Path:
        return self.path(".img")

    @property
    def info(self) -> dict[str, object]:
        data = json.loads(self.path(".build-info.json").read_text())
        assert isinstance(data, dict)
        return data

    def partitions(self) -> tuple[int, int]:
        table = json.loads(sh("sfdisk", "--json", str(self.image)))["partitiontable"]
        return table["partitions"][0]["start"] * 512, table["partitions"][1]["start"] * 512

    def boot_file(self, name: str) -> bytes:
        boot_offset, _ = self.partitions()
        return subprocess.run(["mtype", "-i", f"{self.image}@@{boot_offset}", f"::/{name}"],
                              check=True, capture_output=True).stdout

    def boot_names(self) -> list[str]:
        boot_offset, _ = self.partitions()
        listing = sh("mdir", "-i", f"{self.image}@@{boot_offset}", "-b", "::/")
        return [n.removeprefix("::/") for n in listing.split()]

    def debugfs(self, request: str) -> str:
        _, root_offset = self.partitions()
        return sh("debugfs", "-R", request, f"{self.image}?offset={root_offset}")

    def root_file(self, path: str) -> str:
        return self.debugfs(f"cat {path}")

    def exists(self, path: str) -> bool:
        _, root_offset = self.partitions()
        result = subprocess.run(["debugfs", "-R", f"stat {path}", f"{self.image}?offset={root_offset}"],
                                capture_output=True, text=True, check=False)
        return "File not found" not in result.stderr and "Inode:" in result.stdout


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_key(cache: Path) -> str:
    """An admin key kept in the cache, so repeated test builds hit the stage cache."""
    key = cache / "test-ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ewindow-test", "-f", str(key))
    return key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("build")
    public_key = test_key(default_cache_dir())
    site = tmp / "site.yaml"
    # Both compressors, at fast levels: the test checks the round trip, not the ratio.
    site.write_text(f"admin:\n  authorized_keys: ['{public_key}']\n"
                    "image:\n  compression: [zstd, xz]\n  zstd_level: 3\n  xz_level: 0\n")
    out = tmp / "out"
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "build", "-c", str(site),
                             "--out", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    yield Built(out, site, public_key)


def test_all_artifacts_are_complete_and_summed(built: Built) -> None:
    names = sorted(p.name for p in built.out.iterdir() if p.is_file())
    assert names == sorted(["SHA256SUMS", f"{built.stem}.img", f"{built.stem}.img.zst",
                            f"{built.stem}.img.xz", f"{built.stem}.img.bmap",
                            f"{built.stem}.manifest", f"{built.stem}.build-info.json"])
    sh("sha256sum", "--check", "--strict", str(built.out / "SHA256SUMS"))
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
                   "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2710-rpi-zero-2-w.dtb"):
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
    result = boot(built.image, BootSpec(machine="virt", timeout=300, grow_bytes=512 * MIB))
    report = result.report
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

