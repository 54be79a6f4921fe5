# SPDX-License-Identifier: MIT
"""The build pipeline (``build.py build``), in the order a build runs it:

- :mod:`.driver`: plan (stage keys, source packages), run the stages, hand the tree to the
  image step; :mod:`.plan` explains which stages rebuild and why;
- :mod:`.stages`: the stage definitions (``stages/*/stage.yaml``) and running one stage;
- :mod:`.rootfs`: mmdebstrap, chroot and offline systemctl commands; :mod:`.overlay`:
  overlay files rendered and installed; :mod:`.localdebs`: .debs installed instead of the
  mirror's;
- :mod:`.cache`: the stage snapshots; :mod:`.golden_lint`: the export gate on the tree.

May import: image, packages, apt, config and the shared plumbing. Imported by the CLI only.
"""
