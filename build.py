#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ewindow-image command line; everything lives in the ewindow_image package."""

import sys

from ewindow_image.cli import main

if __name__ == "__main__":
    sys.exit(main(isolate=True))
