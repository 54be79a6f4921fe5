# SPDX-License-Identifier: MIT
"""SHA256SUMS.asc: SHA256SUMS signed with the gpg key named by ``release.signing_key``.

A detached, ASCII-armoured signature, checked with ``gpg --verify SHA256SUMS.asc
SHA256SUMS``. gpg runs in batch mode: the key must be usable without a prompt (no passphrase,
or one a running gpg-agent already holds). Without a key nothing is signed, and an older
SHA256SUMS.asc, which would no longer match, is removed.
"""

from __future__ import annotations

import os
from pathlib import Path


def gpg_base(gnupg_home: str) -> list[str]:
    return ["gpg", "--batch", "--no-tty", *(["--homedir", gnupg_home] if gnupg_home else [])]


def sign_argv(sums: Path, signature: Path, key: str, gnupg_home: str) -> list[str]:
    return [*gpg_base(gnupg_home), "--yes", "--local-user", key, "--armor", "--detach-sign",
            "--output", os.fspath(signature), os.fspath(sums)]


def verify_argv(sums: Path, signature: Path, gnupg_home: str) -> list[str]:
    return [*gpg_base(gnupg_home), "--verify", os.fspath(signature), os.fspath(sums)]
