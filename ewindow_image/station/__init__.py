# SPDX-License-Identifier: MIT
"""The flashing station (``build.py station``, README "Flashing many cards"): cards in,
personalised windows out.

``devices`` (cards arriving, from the kernel's or udev's block events) → ``loop`` (one worker
per card, up to ``--parallel``) → ``writing`` (flash's checks, bmaptool, personalise) →
``record`` (the station log); ``inventory`` hands out the names, ``display`` shows progress.

May import: cards (the checks, bmaptool's command line, personalise), image (an
artifact's sha256), config, firstboot's
checks and the shared plumbing. Imported by the CLI only; no build stage depends on it.
"""
