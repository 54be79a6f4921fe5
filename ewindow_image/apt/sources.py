# SPDX-License-Identifier: MIT
"""The apt lines and options of a build: Debian's mirror and the site's extra repositories,
as mmdebstrap, the image's own apt and the host's resolver (:mod:`.resolver`) see them."""

from __future__ import annotations

from ..config import Config, extra_repo_key

COMPONENTS = "main,contrib,non-free-firmware"


def apt_sources(cfg: Config) -> list[str]:
    suite = cfg.suite.value
    return [
        f"deb {cfg.apt.mirror} {suite} {COMPONENTS.replace(',', ' ')}",
        f"deb {cfg.apt.mirror} {suite}-updates {COMPONENTS.replace(',', ' ')}",
        f"deb {cfg.apt.security_mirror} {suite}-security {COMPONENTS.replace(',', ' ')}",
    ]


def extra_repo_files(cfg: Config) -> dict[str, bytes]:
    """The extra repositories as the image keeps them: a deb822 sources file and one key
    each under /etc/apt/keyrings, so later stages (and the window's own apt) use them."""
    files: dict[str, bytes] = {}
    stanzas = []
    for index, repo in enumerate(cfg.apt.extra_repos):
        key = extra_repo_key(cfg, index)
        keyring = f"/etc/apt/keyrings/ewindow-extra-{index}{key.suffix or '.asc'}"
        files[keyring] = key.read_bytes()
        # a flat repository ("./") has no components
        components = "" if repo.suite.endswith("/") else f"Components: {' '.join(repo.components)}\n"
        stanzas.append(f"Types: deb\nURIs: {repo.uri}\nSuites: {repo.suite}\n{components}"
                       f"Signed-By: {keyring}\n")
    if stanzas:
        files["/etc/apt/sources.list.d/ewindow-extra.sources"] = "\n".join(stanzas).encode()
    return files


def extra_repo_lines(cfg: Config) -> list[str]:
    """One-line sources for the host's resolver, signed by the key files on the host."""
    lines = []
    for index, repo in enumerate(cfg.apt.extra_repos):
        components = "" if repo.suite.endswith("/") else " " + " ".join(repo.components)
        lines.append(f"deb [signed-by={extra_repo_key(cfg, index)}] {repo.uri} {repo.suite}{components}")
    return lines


def apt_options(cfg: Config) -> list[str]:
    options = [f'Acquire::Retries "{cfg.apt.retries}"']
    if cfg.apt.proxy:
        options.append(f'Acquire::http::Proxy "{cfg.apt.proxy}"')
    return options
