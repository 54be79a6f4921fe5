# SPDX-License-Identifier: MIT
"""One SD card: writing the image with bmaptool (:mod:`.flash`) and a card's deployment
settings onto its FAT partition (:mod:`.personalise`).

May import: config, firstboot's parser and the shared plumbing. Imported by the CLI only; no
build stage depends on it (editing it keeps the stage cache).
"""
