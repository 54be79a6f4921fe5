# SPDX-License-Identifier: MIT
"""From a finished root tree to the files in ``out/``: the partition layout (:mod:`.layout`),
assembly without loop devices or mounts (:mod:`.assemble`), the package manifest
(:mod:`.manifest`) and the artifacts with their checksums (:mod:`.artifacts`).

May import: config and the shared plumbing. Imported by build.
"""
