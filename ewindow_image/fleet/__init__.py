# SPDX-License-Identifier: MIT
"""The deployment's windows: hosts and zone lines and tinc host files from the cards'
identity files (:mod:`.registry`), and a new deployment's secrets (:mod:`.network`).

May import: config, firstboot's identity and checks, and the shared plumbing. Imported by
the CLI only.
"""
