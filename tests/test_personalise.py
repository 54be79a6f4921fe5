# SPDX-License-Identifier: MIT
"""personalise and flash: a card's settings written without mounting, read back by firstboot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ewindow_image.cards.flash import Disk, FlashRefused, check_target, parse_lsblk

from .conftest import requires_root
from .keys import ed25519_line
from .pitree import pi_root

REPO = Path(__file__).resolve().parent.parent
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
KEY = ed25519_line("site", "admin@site")


def small_image(path: Path, image_settings: dict[str, object] | None = None) -> Path:
    """An image shaped like ours: MBR, FAT boot partition at 4 MiB with cmdline.txt, a root;
    with ``image_settings`` the root is ext4 holding them as /etc/ewindow/firstboot.json."""
    subprocess.run(["truncate", "-s", "72M", str(path)], check=True)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\nstart=8192, size=65536, type=c\n"
                   "start=73728, type=83\n", text=True, check=True)
    subprocess.run(["mkfs.vfat", "--offset", "8192", str(path), "32768"], check=True,
                   capture_output=True)
    cmdline = path.with_name("cmdline.txt")
    cmdline.write_text("console=tty0 root=PARTUUID=ee1d0c5e-02\n")
    subprocess.run(["mcopy", "-i", f"{path}@@{8192 * 512}", str(cmdline), "::/cmdline.txt"],
                   check=True, env=MTOOLS)
    if image_settings is not None:
        tree = path.with_name(path.name + ".root")
        (tree / "etc/ewindow").mkdir(parents=True)
        (tree / "etc/ewindow/firstboot.json").write_text(json.dumps(image_settings))
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={73728 * 512}", "-d", str(tree),
                        str(path), "36M"], check=True, capture_output=True)
        shutil.rmtree(tree)
    return path


def card_file(target: Path, name: str) -> str:
    return subprocess.run(["mtype", "-i", f"{target}@@{8192 * 512}", f"::/ewindow/{name}"],
                          check=True, capture_output=True, text=True, env=MTOOLS).stdout


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], capture_output=True,
                          text=True, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    secrets = tmp_path / "net" / "secrets.yaml"
    secrets.parent.mkdir()
    secrets.write_text("vpn:\n  psk: 'psk-from-network-init-123'\nwifi:\n  country: DE\n"
                       "  networks: [{ssid: partner-space, psk: 'wifi passphrase 9'}]\n")
    secrets.chmod(0o600)
    site = tmp_path / "site.yaml"
    site.write_text(f"admin:\n  authorized_keys: ['{KEY}']\nsecrets_file: net/secrets.yaml\n")
    return site


def test_personalise_writes_what_firstboot_reads(tmp_path: Path, site: Path) -> None:
    image = small_image(tmp_path / "ewindow.img")
    result = cli("personalise", str(image), "-c", str(site), "--hostname", "lab-window")
    assert result.returncode == 0, result.stderr
    data = json.loads(card_file(image, "deployment.json"))
    assert data["hostname"] == "lab-window" and data["admin"]["authorized_keys"] == [KEY]
    assert data["vpn"]["backends"] == ["peervpn", "cjdns"]  # the default image's
    assert data["vpn"]["psk"] == "psk-from-network-init-123"
    assert data["wifi"]["networks"] == [{"ssid": "partner-space", "psk": "wifi passphrase 9"}]
    # again, without a host name: the file is replaced, not duplicated
    assert cli("personalise", str(image), "-c", str(site)).returncode == 0
    assert "hostname" not in json.loads(card_file(image, "deployment.json"))

    # the card as firstboot finds it
    root = pi_root(tmp_path)
    (root / "boot/firmware/ewindow").mkdir()
    (root / "boot/firmware/ewindow/deployment.json").write_text(card_file(image, "deployment.json"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # an image built without a VPN refuses the card (personalise would have, had it read this root)
    refused = subprocess.run([sys.executable, "-m", "firstboot", "--root", str(root)], env=env,
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "vpn.backends[0]: 'peervpn' is not in this image (built with no VPN)" in refused.stderr
    assert (root / "boot/firmware/ewindow/deployment.json").exists()  # kept for the next try
    settings = root / "etc/ewindow/firstboot.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()),
                                    "vpn": {"backends": ["peervpn", "cjdns"]}}))  # the default image's
    run = subprocess.run([sys.executable, "-m", "firstboot", "--root", str(root)], env=env,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert KEY in (root / "home/ewindow/.ssh/authorized_keys").read_text()
    assert (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").exists()


def test_personalise_refuses_what_is_not_an_ewindow_image(tmp_path: Path, site: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    result = cli("personalise", str(blank), "-c", str(site))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {blank}: no partition table; is this an EWindow image or card?"]
    image = small_image(tmp_path / "x.img")
    bad_name = cli("personalise", str(image), "-c", str(site), "--hostname", "Bad_Name")
    assert bad_name.returncode == 2 and "--hostname: 'Bad_Name' is not a host name" in bad_name.stderr


def test_personalise_refuses_a_vpn_the_image_was_built_without(tmp_path: Path, site: Path) -> None:
    image = small_image(tmp_path / "ewindow.img", {"vpn": {"backends": ["peervpn", "cjdns"]}})
    wants_tinc = tmp_path / "tinc.yaml"
    wants_tinc.write_text(site.read_text() + "vpn:\n  backends: [cjdns, tinc]\n")
    refused = cli("personalise", str(image), "-c", str(wants_tinc))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: {wants_tinc}: vpn.backends[1]: 'tinc' is not in this image (built with peervpn, cjdns); "
        "build an image with it in vpn.backends"]
    assert subprocess.run(["mdir", "-i", f"{image}@@{8192 * 512}", "::/ewindow"], env=MTOOLS,
                          capture_output=True).returncode != 0  # nothing written
    # the image's own backends, or fewer, are fine
    only_cjdns = tmp_path / "cjdns.yaml"
    only_cjdns.write_text(site.read_text() + "vpn:\n  backends: [cjdns]\n")
    assert cli("personalise", str(image), "-c", str(only_cjdns)).returncode == 0
    assert json.loads(card_file(image, "deployment.json"))["vpn"]["backends"] == ["cjdns"]
    # an image whose root cannot be read is personalised unchecked, and says so
    unreadable = small_image(tmp_path / "raw-root.img")
    unchecked = cli("personalise", str(unreadable), "-c", str(wants_tinc))
    assert unchecked.returncode == 0, unchecked.stderr
    assert "the VPN backends it carries were not checked" in unchecked.stderr


# --- flash: the target checks, on lsblk output -----------------------------------------------


def lsblk(name: str, *, rm: bool = False, kind: str = "disk", tran: str | None = None,
          mounts: tuple[str | None, ...] = (None,), part_mounts: tuple[str | None, ...] = (None,),
          size: int = 32 << 30) -> Disk:
    part = {"name": name + "1", "type": "part", "rm": rm, "hotplug": False, "tran": None,
            "size": 256 << 20, "model": None, "mountpoints": list(part_mounts)}
    node = {"name": name, "type": kind, "rm": rm, "hotplug": False, "tran": tran, "size": size,
            "model": "Card Reader ", "mountpoints": list(mounts), "children": [part]}
    return parse_lsblk(json.dumps({"blockdevices": [node]}))


IMAGE_SIZE = 1_472_200_704


def test_usb_and_mmc_cards_are_accepted() -> None:
    assert check_target(lsblk("/dev/sdb", rm=True, tran="usb"), IMAGE_SIZE, force=False) == []
    assert check_target(lsblk("/dev/mmcblk0"), IMAGE_SIZE, force=False) == []


def test_the_system_disk_is_refused_even_with_force() -> None:
    with pytest.raises(FlashRefused, match="holds the running system's /"):
        check_target(lsblk("/dev/nvme0n1", part_mounts=("/",)), IMAGE_SIZE, force=True)


@pytest.mark.parametrize(("disk", "message"), [
    (lsblk("/dev/sdb", rm=True, part_mounts=("/media/card",)), "is mounted at /media/card"),
    (lsblk("/dev/sda"), "(Card Reader) is not a removable disk"),
])
def test_mounted_or_fixed_disks_need_force(disk: Disk, message: str) -> None:
    with pytest.raises(FlashRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_target(disk, IMAGE_SIZE, force=False)
    assert any(message in w for w in check_target(disk, IMAGE_SIZE, force=True))


def test_partitions_and_small_cards_are_refused() -> None:
    with pytest.raises(FlashRefused, match="is a partition"):
        check_target(lsblk("/dev/sdb1", rm=True, kind="part"), IMAGE_SIZE, force=True)
    with pytest.raises(FlashRefused, match="holds 1.0 GiB, the image needs 1.4 GiB"):
        check_target(lsblk("/dev/sdb", rm=True, size=1 << 30), IMAGE_SIZE, force=True)


@requires_root
def test_flash_refuses_the_hosts_own_disk(tmp_path: Path) -> None:
    # --nofsroot: in a chroot on a bind mount (.ci/run) SOURCE is "/dev/vda[/path/to/root]"
    root_source = subprocess.run(["findmnt", "-n", "--nofsroot", "-o", "SOURCE", "/"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    disk = subprocess.run(["lsblk", "-n", "-d", "-p", "-o", "PKNAME", root_source], capture_output=True,
                          text=True, check=False).stdout.strip() or root_source
    if not disk.startswith("/dev/"):
        pytest.skip(f"/ is on {root_source}, not a block device")
    # the image does not exist: a broken check could still not write anything
    result = cli("flash", disk, "--image", str(tmp_path / "missing.img"))
    assert result.returncode == 1
    assert "holds the running system's /" in result.stderr


@requires_root
def test_flash_writes_a_card_with_bmaptool_and_personalises_it(tmp_path: Path, site: Path) -> None:
    image = small_image(tmp_path / "ewindow.img")
    subprocess.run(["bmaptool", "create", "-o", f"{image}.bmap", str(image)], check=True,
                   capture_output=True)
    card_file_path = tmp_path / "card.raw"
    subprocess.run(["truncate", "-s", "128M", str(card_file_path)], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(card_file_path)], capture_output=True,
                          text=True, check=True).stdout.strip()
    try:
        refused = cli("flash", loop, "--image", str(image), "-c", str(site))
        assert refused.returncode == 1 and "is not a removable disk" in refused.stderr
        result = cli("flash", loop, "--image", str(image), "-c", str(site), "--force")
        assert result.returncode == 0, result.stderr
        assert "warning: --force:" in result.stderr
        data = json.loads(card_file(Path(loop), "deployment.json"))
        assert data["vpn"]["psk"] == "psk-from-network-init-123"
        with image.open("rb") as a, open(loop, "rb") as b:
            assert a.read(4 << 20) == b.read(4 << 20)  # the partition table and first MiBs
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    shutil.rmtree(tmp_path / "net")
