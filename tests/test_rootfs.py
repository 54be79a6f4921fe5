# SPDX-License-Identifier: MIT
from __future__ import annotations

from pathlib import Path

from ewindow_image.apt import sources as apt_lines
from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.image import manifest
from ewindow_image.pipeline import rootfs


def test_mmdebstrap_diverts_initramfs_and_keeps_no_proxy() -> None:
    cfg = load_config(ConfigLayers((), ("apt.proxy=http://cache:3142",)))
    argv = rootfs.mmdebstrap_argv(cfg, ["linux-image-arm64", "python3"], Path("/t/rootfs"),
                                  Path("/c/debs"))
    assert argv[:3] == ["mmdebstrap", "--mode=root", "--variant=minbase"]
    assert "--include=linux-image-arm64,python3" in argv
    assert any(a.startswith("--essential-hook=") and "dpkg-divert" in a and "update-initramfs" in a
               for a in argv)
    assert '--aptopt=Acquire::http::Proxy "http://cache:3142"' in argv
    # the proxy is written into the target by --aptopt and removed before the tree is kept
    assert f'--customize-hook=rm -f "$1{rootfs.MMDEBSTRAP_APT_CONF}"' in argv
    assert "--setup-hook=sync-in /c/debs /var/cache/apt/archives/" in argv
    assert "--customize-hook=sync-out /var/cache/apt/archives /c/debs" in argv
    tail = argv[argv.index("trixie"):]
    assert tail[1] == "/t/rootfs"
    assert tail[2:] == [
        "deb http://deb.debian.org/debian trixie main contrib non-free-firmware",
        "deb http://deb.debian.org/debian trixie-updates main contrib non-free-firmware",
        "deb http://deb.debian.org/debian-security trixie-security main contrib non-free-firmware",
    ]


def test_bookworm_sources() -> None:
    cfg = load_config(ConfigLayers((), ("suite=bookworm",)))
    assert apt_lines.apt_sources(cfg)[2].split()[2] == "bookworm-security"


def test_chroot_runs_in_a_private_mount_namespace() -> None:
    argv = rootfs.chroot_argv(Path("/t/r"), "update-initramfs -c -k all",
                              binds=[(Path("/c/debs"), "/var/cache/apt/archives")])
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert argv[-5:] == ["chroot", "/t/r", "update-initramfs -c -k all", "/c/debs",
                         "/var/cache/apt/archives"]


def test_apt_install_in_a_later_stage_carries_options_not_files() -> None:
    cfg = load_config(ConfigLayers((), ("apt.proxy=http://cache:3142",)))
    script = rootfs.apt_install_script(cfg, ["tinc"])
    assert "-o Acquire::http::Proxy=http://cache:3142" in script
    assert "--no-install-recommends tinc" in script
    assert "apt-get clean" not in script  # the archive dir is the shared cache
    # a package from the mirror always reads the lists; local .debs only when one is missing
    # (tests/test_local_install.py runs both in an emulated tree)
    assert script.startswith("apt-get ") and " update -q && " in script and " -s " not in script
    mixed = rootfs.apt_install_script(cfg, ["tinc", "/var/cache/ewindow-local-debs/peervpn_1_arm64.deb"])
    assert mixed.startswith("apt-get ") and " -s " not in mixed


def test_manifest_keeps_installed_packages_only() -> None:
    output = ("ii \tzlib1g\t1:1.3\tarm64\tzlib\t1:1.3\nrc \told\t1\tarm64\told\t1\n"
              "ii \tbase-files\t13\tarm64\tbase-files\t13\n")
    assert [(r.name, r.version, r.arch, r.source) for r in manifest.parse_manifest(output)] == [
        ("base-files", "13", "arm64", "base-files"), ("zlib1g", "1:1.3", "arm64", "zlib")]
