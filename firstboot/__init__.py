# SPDX-License-Identifier: MIT
"""Runs on the window at first boot (standard library only)."""
