# SPDX-License-Identifier: MIT
"""Booting images under qemu-system-aarch64 (virt, raspi3b) and reading the boot report
(:mod:`.boottest`).

May import: the shared plumbing only. Imported by the CLI and the tests.
"""
