# SPDX-License-Identifier: MIT
"""ewindow-image: builds the Electronic Window's Raspberry Pi SD card image."""

__version__ = "0.1.0"
