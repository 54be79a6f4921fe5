# SPDX-License-Identifier: MIT
"""The real thing: build the image with build.py, check the artifacts and what is inside the
image (read without mounting: sfdisk, mtools, debugfs), then boot it under qemu.

Marked slow: ~5 min cold (mmdebstrap under emulation), seconds when the stage cache is warm.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.packages.checkout import CheckoutPackages
from ewindow_image.pipeline.cache import default_cache_dir
from ewindow_image.qemu.boottest import BootSpec, BootTestError, boot, firmware_boot_files

from .conftest import Built, requires_root, sh
from .release_checks import check_imager_list, check_sbom

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
                            f"{built.stem}.manifest", f"{built.stem}.build-info.json",
                            f"{built.stem}.spdx.json", f"{built.stem}.rpi-imager.json",
                            f"{built.stem}.icon.svg"])  # no SHA256SUMS.asc: no signing key
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
    assert all(len(row) == 5 for row in rows)
    packages = {row[0]: (row[1], row[2]) for row in rows}
    for name in ("linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "openssh-server",
                 "python3-gpiozero", "systemd"):
        assert name in packages
    assert "python3-pyudev" not in packages  # only the flashing station watches devices
    assert packages["systemd"][1] == "arm64"
    info = built.info
    cfg = load_config(ConfigLayers((built.site,)))
    assert info["config_digest"] == cfg.digest()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", str(info["git_revision"]))
    stages = info["stages"]
    assert isinstance(stages, list)
    assert [s["name"] for s in stages] == sorted(p.name for p in (REPO / "stages").iterdir())
    assert all(len(s["key"]) == 64 for s in stages)
    assert info["packages"] == len(rows)
    # the default image's VPN: PeerVPN and cjdns built from their pinned source, named so;
    # the window's own code built from this checkout, with the versions its history gives
    built_here = {row[0]: row[4] for row in rows if row[4].startswith("built from ")}
    own = {name for name, origin in built_here.items()
           if origin == "built from this checkout (ewindow-image)"}
    assert own == {"ewindow-firstboot", "ewindow-agent", "ewindow-updates"}
    versions = CheckoutPackages(REPO, REPO / "packages", default_cache_dir()).versions()
    assert {name: packages[name] for name in own} == {name: (versions[name], "all") for name in own}
    checkout_packages = info["checkout_packages"]
    assert isinstance(checkout_packages, list)
    assert {p["name"]: p["version"] for p in checkout_packages} == versions
    built_here = {name: origin for name, origin in built_here.items() if name not in own}
    assert set(built_here) == {"peervpn", "cjdns"}
    source_packages = info["source_packages"]
    assert isinstance(source_packages, list)
    pins = {p["name"]: p for p in source_packages}
    for name, origin in built_here.items():
        assert origin == f"built from {pins[name]['upstream']} (commit {pins[name]['commit']})"
        assert packages[name] == (pins[name]["version"], "arm64")


def test_every_package_has_the_sha256_of_the_deb_it_was_installed_from(built: Built) -> None:
    rows = [line.split("\t") for line in built.path(".manifest").read_text().splitlines()]
    debs = default_cache_dir() / "debs"
    own = CheckoutPackages(REPO, REPO / "packages", default_cache_dir())
    own_debs = {p.package.name: p.deb for p in own.plan(sorted(own.packages))}
    checked = 0
    for name, version, arch, digest, origin in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", digest), name
        if origin.startswith("http"):
            assert origin.endswith(".deb") and f"/{name}_" in urllib.parse.unquote(origin)
            cached = debs / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
            if cached.is_file():  # the very file apt installed, hashed here
                assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest, name
                checked += 1
        elif origin == "built from this checkout (ewindow-image)":  # the .deb the build made
            assert hashlib.sha256(own_debs[name].read_bytes()).hexdigest() == digest, name
        else:
            assert origin.startswith("built from https://"), name
    assert checked > 100


def test_release_files_sbom_and_raspberry_pi_imager_list(built: Built) -> None:
    entry = check_imager_list(built.path(".rpi-imager.json"), built.image)
    assert entry["url"] == built.path(".img.xz").resolve().as_uri()  # xz preferred: every Imager reads it
    epoch = int(str(built.info["source_date_epoch"]))
    assert entry["release_date"] == time.strftime("%Y-%m-%d", time.gmtime(epoch))
    document = check_sbom(built.path(".spdx.json"))
    manifest = {line.split("\t")[0]: line.split("\t") for line in
                built.path(".manifest").read_text().splitlines()}
    deb_packages = {p.name: p for p in document.packages if p.name in manifest}
    assert set(deb_packages) == set(manifest)
    for name, package in deb_packages.items():
        assert package.version == manifest[name][1]
        assert [c.value for c in package.checksums] == [manifest[name][3]]
    licensed = [p for p in deb_packages.values() if str(p.license_declared) != "NOASSERTION"]
    assert len(licensed) > 0.8 * len(deb_packages)  # Debian's copyright files are mostly DEP-5
    assert "GPL-2.0" in str(deb_packages["bash"].license_declared) or \
        "GPL-3.0" in str(deb_packages["bash"].license_declared)
    upstream = {p.name for p in document.packages if p.name.endswith("(upstream source)")}
    assert upstream == {"cjdns (upstream source)", "peervpn (upstream source)"}


def test_the_vpn_daemons_built_from_source_are_arm64_programs(built: Built, tmp_path: Path) -> None:
    for path in ("/usr/sbin/peervpn", "/usr/sbin/cjdroute"):
        target = tmp_path / Path(path).name
        built.debugfs(f"dump {path} {target}")
        head = target.read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and head[18] == 183  # e_machine EM_AARCH64
        assert target.stat().st_size > 50_000
    # no card settings in the image: no VPN config, so neither unit starts on a bare card
    assert not built.exists("/etc/peervpn/ewindow.conf") and not built.exists("/etc/cjdroute.conf")


def test_boot_partition(built: Built) -> None:
    names = built.boot_names()
    config_txt = built.boot_file("config.txt").decode()
    kernel, initrd = firmware_boot_files(config_txt)  # what the firmware (and the VM) boots
    assert kernel.startswith("vmlinuz-") and kernel in names
    assert initrd.startswith("initrd.img-") and initrd in names
    assert "arm_64bit=1" in config_txt
    for needed in ("bootcode.bin", "start.elf", "start4.elf", "fixup.dat", "bcm2837-rpi-3-b.dtb",
                   "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2837-rpi-zero-2-w.dtb"):
        assert needed in names, needed
    cmdline = built.boot_file("cmdline.txt").decode()
    assert "cma=" not in cmdline  # see overlays/boot/etc/default/raspi-firmware.j2
    assert "console=ttyS1,115200" in cmdline
    # Generated once, with the curated module list: small.
    assert len(built.boot_file(initrd)) < 20 * MIB


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
        # the agent's libraries and memory, once its first checks have run (hardware/__main__.py:
        # no pkg_resources, so no ssl)
        seen["agent"] = subprocess.run([*ssh, "-i", str(key), "-o", "IdentitiesOnly=yes",
                                        "ewindow@127.0.0.1",
                                        "sleep 20; pid=$(systemctl show -P MainPID ewindow-agent.service); "
                                        "echo ssl=$(sudo grep -c libssl /proc/$pid/maps); "
                                        "grep VmRSS /proc/$pid/status"],
                                       capture_output=True, text=True, timeout=120, check=False)

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
    # firstboot named it after qemu's NIC (52:54:00:e1:c0:fe): no serial, no MAC override
    assert report["hostname"] == "ewindow-e1c0fe" and report["firstboot"] == "done"
    assert report["agent"] == "active"  # degraded (no GPIO, no ACT LED in a VM), not crash-looping
    assert "ssl=0\n" in seen["agent"].stdout, seen["agent"]
    print(f"the agent in the VM: {seen['agent'].stdout.split(chr(10))[1]}")
    # both VPNs are in the image, and a card without their settings starts neither
    units = dict(item.split(":", 1) for item in report["vpn"].split(","))
    assert units == {"ewindow-peervpn.service": "dead", "ewindow-cjdns.service": "dead"}
    assert report["ssh"] == "active" and report["networkd"] == "active"
    assert report["growroot"] == "active"
    assert re.fullmatch(r"[0-9a-f]{32}", report["machine_id"])
    # the card was 512 MiB larger than the image: the root filesystem grew into it
    assert int(report["root_kib"]) > root_size_kib + 400 * 1024
    assert "10.0.2.15/24" in report["addresses"]  # DHCP from qemu's user network
    assert report["kernel"] == built.info["image"]["kernel"]  # type: ignore[index]


@pytest.mark.boot
def test_qemu_that_exits_early_is_reported_with_its_status_and_stderr(built: Built) -> None:
    # qemu refuses a malformed NIC address at start-up: the error must say that qemu ended,
    # with its exit status and its own message, as soon as it ends, not "no boot report within
    # 300 s" with an empty console.
    with pytest.raises(BootTestError) as caught:
        boot(built.image, BootSpec(machine="virt", timeout=300, mac="not-a-mac"))
    message = str(caught.value)
    assert re.search(r"virt: qemu exited with status 1 after \d+\.\d s, before the boot report", message)
    assert "not-a-mac" in message  # qemu's own words about the bad property
    assert "no boot report within" not in message  # qemu's end was seen, not the timeout's


@pytest.mark.boot
def test_boots_on_emulated_raspberry_pi_3(built: Built, tmp_path: Path) -> None:
    # qemu's Pi 3 has no working NIC and no firmware to fill in the serial: the identity
    # comes from ewindow.serial= by the Pi 1–3 rule (b8:27:eb + the serial's low 24 bits).
    # The card's agent gets an LED on GPIO17 (as a site file would set it), so the test sees
    # the agent claim its LED and button lines on the BCM2835's real gpiochip.
    card = tmp_path / "card.img"
    sh("cp", "--sparse=always", str(built.image), str(card))
    agent_json = tmp_path / "agent.json"
    agent_json.write_text(json.dumps({"led": {"kind": "single", "pins": [17], "active_high": True},
                                      "button": {"pin": 3}, "probe": {}}))
    _, root_offset = built.partitions()
    sh("debugfs", "-w", "-R", "rm /etc/ewindow/agent.json", f"{card}?offset={root_offset}")
    sh("debugfs", "-w", "-R", f"write {agent_json} /etc/ewindow/agent.json", f"{card}?offset={root_offset}")
    result = boot(card, BootSpec(machine="raspi3b", timeout=400,
                                 extra_cmdline="ewindow.serial=00000000b83c3c1b"), in_place=True)
    assert "Machine model: Raspberry Pi 3 Model B" in result.console
    assert result.report["ssh"] == "active"
    assert result.report["growroot"] == "active"
    assert result.report["hostname"] == "ewindow-3c3c1b"
    assert result.report["agent"] == "active"
    # the libgpiod pin factory holds the button (GPIO3) and the LED (GPIO17), as gpioinfo shows
    assert set(result.report["agent_gpio"].split(",")) == {"3", "17"}
    assert result.report["tap0_mac"] == "ba:27:eb:3c:3c:1b"
    assert "fde1:c0fe::b827:eb3c:3c1b/64" in result.report["tap0_addrs"]


def card_file(disk: Path, name: str) -> str | None:
    table = json.loads(sh("sfdisk", "--json", str(disk)))["partitiontable"]
    boot_offset = table["partitions"][0]["start"] * 512
    result = subprocess.run(["mtype", "-i", f"{disk}@@{boot_offset}", f"::/ewindow/{name}"],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return result.stdout if result.returncode == 0 else None


# Holds tap0 the way a VPN daemon does (TUNSETIFF on the existing tap): only then does the
# kernel give it carrier and the link-local address.
HOLD_TAP = ("import fcntl, os, struct, subprocess, time; fd = os.open('/dev/net/tun', os.O_RDWR); "
            "fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'tap0', 0x0002 | 0x1000)); time.sleep(3); "
            "print(subprocess.run(['ip', '-6', '-brief', 'address', 'show', 'dev', 'tap0'], "
            "capture_output=True, text=True).stdout)")


@pytest.mark.boot
def test_firstboot_identity_on_a_personalised_card_booted_twice(built: Built, tmp_path: Path) -> None:
    disk = tmp_path / "card.img"
    sh("cp", "--sparse=always", str(built.image), str(disk))
    secrets = tmp_path / "net" / "secrets.yaml"
    secrets.parent.mkdir()
    secrets.write_text("vpn:\n  psk: 'vpn-psk-for-the-boot-test-42'\n")
    secrets.chmod(0o600)
    site = tmp_path / "site.yaml"
    site.write_text(f"admin:\n  authorized_keys: ['{built.public_key}']\nsecrets_file: net/secrets.yaml\n")
    personalise = subprocess.run([sys.executable, str(REPO / "build.py"), "personalise", str(disk),
                                  "-c", str(site)], capture_output=True, text=True, check=False)
    assert personalise.returncode == 0, personalise.stderr
    assert "vpn-psk-for-the-boot-test-42" in (card_file(disk, "deployment.json") or "")

    port = free_port()
    spec = BootSpec(machine="virt", timeout=300, mac="b8:27:eb:27:35:ed", ssh_port=port,
                    extra_cmdline="ewindow.serial=00000000b83c3c1b")
    ssh = ["ssh", "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "ConnectTimeout=20", "-o", "BatchMode=yes", "-i", str(built.private_key),
           "-o", "IdentitiesOnly=yes", "ewindow@127.0.0.1"]
    seen: dict[str, str] = {}

    def inspect() -> None:
        command = f'sudo stat -c %a /etc/ewindow/deployment.json && sudo python3 -c "{HOLD_TAP}"'
        result = subprocess.run([*ssh, command], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        seen["out"] = result.stdout

    first = boot(disk, spec, while_up=inspect, in_place=True).report
    assert first["firstboot"] == "done" and first["firstboot_ran"] == "yes"
    assert first["hostname"] == "ewindow-2735ed"
    assert first["tap0_mac"] == "ba:27:eb:27:35:ed"
    assert "fde1:c0fe::b827:eb27:35ed/64" in first["tap0_addrs"]
    assert seen["out"].splitlines()[0] == "600"  # the secrets moved to a root-only file
    assert "fe80::b827:ebff:fe27:35ed/64" in seen["out"]  # EUI-64 of the tap MAC, as predicted
    # the secrets left the card; the public identity arrived for the admin
    assert card_file(disk, "deployment.json") is None
    public = json.loads(card_file(disk, "identity.json") or "{}")
    assert public["serial"] == "00000000b83c3c1b" and public["ula"] == "fde1:c0fe::b827:eb27:35ed"
    assert "vpn-psk" not in json.dumps(public)

    second = boot(disk, spec, in_place=True).report
    assert second["firstboot_ran"] == "no"  # finished before, no new deployment.json
    for key in ("hostname", "tap0_mac", "machine_id"):
        assert second[key] == first[key], key
    assert "fde1:c0fe::b827:eb27:35ed/64" in second["tap0_addrs"]

