# SPDX-License-Identifier: MIT
"""The command line, by job, the way ``build.py --help`` groups it:

- :mod:`.image`: build, plan, config, cache, packages, verify-repro (the image);
- :mod:`.cards`: personalise, flash (one card);
- :mod:`.fleet`: identity, hosts, network init, repo, fleet status (the fleet);
- :mod:`.checks`: boot-test;
- :mod:`.common`: the parser class and the options several commands share.

Each group module has ``add_commands(sub)``, which adds its commands' parsers with their
handler as the ``handler`` default; :mod:`ewindow_image.cli` only assembles them.

May import: every other part of the builder (pipeline, cards, fleet, qemu, image, packages,
apt, config) and the shared plumbing. Imported by the CLI only.
"""
