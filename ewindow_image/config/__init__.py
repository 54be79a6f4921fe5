# SPDX-License-Identifier: MIT
"""The configuration: what can be set (:mod:`.schema`), how the layers are loaded and merged
(:mod:`.loading`, :mod:`.yamlfile`, ``defaults.yaml``) and how each value is checked
(:mod:`.validation`, with the value checks of ``firstboot/checks.py``).

May import: the shared plumbing (``errors``) and ``firstboot``'s checks. Everything else
imports it; it imports nothing of the build.
"""

from .loading import DEFAULTS_FILE, ConfigLayers, dump_config, load_config, parse_override
from .schema import (
    NOT_KEYS,
    REDACTED,
    SECRET,
    AdminConfig,
    AgentConfig,
    AptConfig,
    BootConfig,
    BuildConfig,
    CjdnsConfig,
    Compression,
    Config,
    ExtraRepoConfig,
    IdentityConfig,
    ImageConfig,
    InitramfsModules,
    Suite,
    UpdatesConfig,
    VpnBackend,
    VpnConfig,
    VpnRole,
    WifiConfig,
    agent_settings,
    extra_repo_key,
    template_context,
)
from .updates import REPO_GNUPG_DIR, REPO_KEYRING, deployment_dir, updates_keyring
from .validation import parse_size

__all__ = [
    "DEFAULTS_FILE", "NOT_KEYS", "REDACTED", "REPO_GNUPG_DIR", "REPO_KEYRING", "SECRET",
    "AdminConfig", "AgentConfig", "AptConfig", "BootConfig", "BuildConfig", "CjdnsConfig",
    "Compression", "Config", "ConfigLayers", "ExtraRepoConfig", "IdentityConfig", "ImageConfig",
    "InitramfsModules", "Suite", "UpdatesConfig", "VpnBackend", "VpnConfig", "VpnRole",
    "WifiConfig", "agent_settings", "deployment_dir", "dump_config", "extra_repo_key",
    "load_config", "parse_override", "parse_size", "template_context", "updates_keyring",
]
