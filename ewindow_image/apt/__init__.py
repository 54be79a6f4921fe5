# SPDX-License-Identifier: MIT
"""apt as the build uses it: the sources lines and options (:mod:`.sources`) and the versions
the mirror would install today, resolved with the host's apt (:mod:`.resolver`), which go into
the stage and package keys.

May import: config and the shared plumbing. Imported by build and packages.
"""
