# SPDX-License-Identifier: MIT
"""On the window: one unattended upgrade run (apt-daily-upgrade.service, README "Updates").
Standard library only; the value checks are firstboot's (firstboot/checks.py)."""
