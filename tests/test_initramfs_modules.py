# SPDX-License-Identifier: MIT
"""The curated initramfs module list against each supported board's device tree.

With MODULES=list the initrd holds only the listed drivers; a missing SD controller or
regulator driver is a card that does not boot. For every enabled node on the boot path
(SD/eMMC controllers, their regulators, USB and PCIe for USB boot) of each board's DTB in
the built image, the driver that binds its compatible string, if it is a loadable module,
must be in the initrd. Drivers built into Debian's kernel have no modules.alias entry.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import Built, requires_root

pytestmark = [pytest.mark.slow, requires_root]

BOARDS = {
    "Pi 3 B": "bcm2837-rpi-3-b.dtb",
    "Pi 3 B+": "bcm2837-rpi-3-b-plus.dtb",
    "Pi 4 B": "bcm2711-rpi-4-b.dtb",
    "Pi 400": "bcm2711-rpi-400.dtb",
    "Zero 2 W": "bcm2837-rpi-zero-2-w.dtb",
}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOOT_PATH = re.compile(r"mmc|sdhci|sdhost|emmc|regulator|usb|pcie|firmware-gpio|dwc")


def enabled_compatibles(dts: str) -> set[str]:
    """Compatible strings of nodes that are not disabled (nor inside a disabled node)."""
    found: set[str] = set()
    stack: list[dict[str, object]] = []
    for raw in dts.splitlines():
        line = raw.strip()
        if line.endswith("{"):
            stack.append({"compatible": [], "disabled": False})
        elif line.startswith("};"):
            node = stack.pop()
            if not node["disabled"] and not any(p["disabled"] for p in stack):
                found.update(node["compatible"])  # type: ignore[arg-type]
        elif stack and line.startswith("compatible ="):
            stack[-1]["compatible"] = re.findall(r'"([^"]+)"', line)
        elif stack and line.startswith("status =") and '"disabled"' in line:
            stack[-1]["disabled"] = True
    return found


def modules_for(compatible: str, aliases: str) -> set[str]:
    pattern = re.compile(r"^alias of:N\*T\*C" + re.escape(compatible) + r"(C\*)? (\S+)$", re.M)
    return {m.group(2).replace("-", "_") for m in pattern.finditer(aliases)}


def test_compatible_parsing_skips_disabled_subtrees() -> None:
    dts = """/ {
\ta {
\t\tcompatible = "x,on", "x,generic";
\t};
\tb {
\t\tcompatible = "x,off";
\t\tstatus = "disabled";
\t\tc {
\t\t\tcompatible = "x,child";
\t\t};
\t};
};"""
    assert enabled_compatibles(dts) == {"x,on", "x,generic"}


def test_boot_path_drivers_of_every_board_are_in_the_initrd(built: Built, tmp_path: Path) -> None:
    names = built.boot_names()
    initrd_name = next(n for n in names if n.startswith("initrd.img-"))
    kernel = initrd_name.removeprefix("initrd.img-")
    aliases = built.root_file(f"/usr/lib/modules/{kernel}/modules.alias")
    assert "alias of:" in aliases
    initrd = built.boot_file(initrd_name)
    # Two cpio archives: trixie's initramfs-tools stores the already compressed .ko.xz files
    # in an uncompressed first one, the rest in a zstd one after it.
    first = subprocess.run(["cpio", "-it", "--quiet"], input=initrd, capture_output=True,
                           check=True).stdout.decode()
    second = subprocess.run(["sh", "-c", "zstd -dc | cpio -it --quiet"],
                            input=initrd[initrd.index(ZSTD_MAGIC):], capture_output=True,
                            check=True).stdout.decode()
    cpio = first + second
    in_initrd = {Path(p).name.split(".ko")[0].replace("-", "_") for p in cpio.split() if ".ko" in p}
    assert "ext4" in in_initrd
    missing: list[str] = []
    checked = 0
    for board, dtb_name in BOARDS.items():
        assert dtb_name in names, f"{board}: {dtb_name} not on the boot partition"
        dtb = tmp_path / dtb_name
        dtb.write_bytes(built.boot_file(dtb_name))
        dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                             text=True, check=True).stdout
        for compatible in sorted(c for c in enabled_compatibles(dts) if BOOT_PATH.search(c)):
            for module in modules_for(compatible, aliases):
                checked += 1
                if module not in in_initrd:
                    missing.append(f"{board}: {compatible} needs {module}")
    assert checked >= 5  # the check really looked at loadable drivers
    assert not missing, "\n".join(missing)
