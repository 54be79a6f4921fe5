# SPDX-License-Identifier: MIT
"""The boot test boots what the Pi's firmware would: the files config.txt names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ewindow_image.qemu.boottest import firmware_boot_files

# as raspi-firmware's kernel hook (/etc/kernel/postinst.d/z50-raspi-firmware) writes it
HOOK_CONFIG_TXT = """# Do not modify this file!
#
# It is automatically generated upon install or update of either the
# firmware or the Linux kernel.

# Switch the CPU from ARMv7 into ARMv8 (aarch64) mode
arm_64bit=1

enable_uart=1
upstream_kernel=1

kernel=vmlinuz-6.17.13+deb13-arm64
# For details on the initramfs directive, see
# https://www.raspberrypi.org/forums/viewtopic.php?f=63&t=10532
initramfs initrd.img-6.17.13+deb13-arm64

# Inserted by /etc/default/raspi-firmware-custom
dtparam=audio=on
"""


def test_the_files_raspi_firmwares_config_txt_names() -> None:
    assert firmware_boot_files(HOOK_CONFIG_TXT) == ("vmlinuz-6.17.13+deb13-arm64",
                                                    "initrd.img-6.17.13+deb13-arm64")


def test_a_later_line_overrides_and_comments_and_followkernel_are_not_names() -> None:
    text = HOOK_CONFIG_TXT + ("kernel=vmlinuz-custom # the admin's own\n"
                              "initramfs initrd.custom followkernel\n")
    assert firmware_boot_files(text) == ("vmlinuz-custom", "initrd.custom")


def test_a_config_txt_naming_no_kernel_gives_nothing_to_boot() -> None:
    assert firmware_boot_files("arm_64bit=1\n#kernel=vmlinuz-1\nkernel_address=0x80000\n") == ("", "")


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,30}", fullmatch=True)


@given(st.lists(st.tuples(st.sampled_from(["kernel", "initramfs", "dtparam"]), names), max_size=8))
def test_the_last_kernel_and_initramfs_lines_win(lines: list[tuple[str, str]]) -> None:
    text = "".join(f"{key}={name}\n" if key != "initramfs" else f"initramfs {name}\n"
                   for key, name in lines)
    kernels = [name for key, name in lines if key == "kernel"]
    initrds = [name for key, name in lines if key == "initramfs"]
    assert firmware_boot_files(text) == (kernels[-1] if kernels else "", initrds[-1] if initrds else "")
