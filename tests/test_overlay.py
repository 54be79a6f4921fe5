# SPDX-License-Identifier: MIT
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ewindow_image.config import load_config, template_context
from ewindow_image.errors import ConfigError
from ewindow_image.pipeline.overlay import install_files, render_overlay
from ewindow_image.pipeline.stages.definition import FileSpec

from .conftest import requires_root

REPO = Path(__file__).resolve().parent.parent


def make_overlay(tmp_path: Path) -> Path:
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc/hostname.j2").write_text("{{ hostname }}\n")
    (overlay / "etc/static.conf").write_text("plain {{ not rendered }}\n")
    (overlay / "usr/local/bin").mkdir(parents=True)
    tool = overlay / "usr/local/bin/tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (overlay / "keys.j2").write_text("{% for k in admin.authorized_keys %}{{ k }}\n{% endfor %}")
    return overlay


def test_render_templates_modes_and_computed_paths(tmp_path: Path) -> None:
    ctx = template_context(load_config())
    specs = [FileSpec("/home/ewindow/.ssh/authorized_keys", 0o600, "ewindow", "ewindow", "keys.j2"),
             FileSpec("/home/ewindow/.ssh", 0o700, "ewindow", "ewindow")]
    files, dirs = render_overlay(make_overlay(tmp_path), specs, ctx)
    by_path = {f.path: f for f in files}
    assert set(by_path) == {"/etc/hostname", "/etc/static.conf", "/usr/local/bin/tool",
                            "/home/ewindow/.ssh/authorized_keys"}
    assert by_path["/etc/hostname"].content == b"ewindow\n"
    assert by_path["/etc/static.conf"].content == b"plain {{ not rendered }}\n"
    assert by_path["/usr/local/bin/tool"].mode == 0o755
    assert by_path["/etc/hostname"].mode == 0o644
    assert by_path["/home/ewindow/.ssh/authorized_keys"].mode == 0o600
    assert [d.path for d in dirs] == ["/home/ewindow/.ssh"]


def test_undefined_template_variable_is_an_error_naming_the_file(tmp_path: Path) -> None:
    overlay = tmp_path / "o"
    overlay.mkdir()
    (overlay / "bad.j2").write_text("line one\n{{ vpn.password }}\n")
    with pytest.raises(ConfigError, match=r"bad.j2: line 2: .*password"):
        render_overlay(overlay, [], template_context(load_config()))


@requires_root
def test_install_uses_target_ids_and_replaces_symlinks(tmp_path: Path, fake_target: Path) -> None:
    ctx = template_context(load_config())
    specs = [FileSpec("/home/ewindow/.ssh/authorized_keys", 0o600, "ewindow", "ewindow", "keys.j2"),
             FileSpec("/home/ewindow/.ssh", 0o700, "ewindow", "ewindow")]
    (fake_target / "etc/hostname").symlink_to("/etc/hostname")  # must not write the host's file
    files, dirs = render_overlay(make_overlay(tmp_path), specs, ctx)
    install_files(fake_target, files, dirs)
    keys = fake_target / "home/ewindow/.ssh/authorized_keys"
    assert (keys.stat().st_uid, keys.stat().st_gid, keys.stat().st_mode & 0o777) == (1000, 1000, 0o600)
    ssh_dir = (fake_target / "home/ewindow/.ssh").stat()
    assert (ssh_dir.st_uid, ssh_dir.st_mode & 0o777) == (1000, 0o700)
    hostname = fake_target / "etc/hostname"
    assert not hostname.is_symlink() and hostname.read_text() == "ewindow\n"
    assert not list(fake_target.rglob("*.ewindow-tmp"))


@requires_root
def test_unknown_owner_in_target_is_an_error(tmp_path: Path, fake_target: Path) -> None:
    overlay = tmp_path / "o"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc/x").write_text("x")
    files, dirs = render_overlay(overlay, [FileSpec("/etc/x", 0o600, "nobody-here", "root")], {})
    with pytest.raises(ConfigError, match="nobody-here: no such user in the target"):
        install_files(fake_target, files, dirs)


def test_symlinked_parent_cannot_escape_the_target(tmp_path: Path, fake_target: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (fake_target / "escape").symlink_to(outside)
    overlay = tmp_path / "o"
    (overlay / "escape").mkdir(parents=True)
    (overlay / "escape/file").write_text("x")
    files, dirs = render_overlay(overlay, [], {})
    with pytest.raises(ConfigError, match="outside the target"):
        install_files(fake_target, files, dirs)
    assert os.listdir(outside) == []


def test_project_overlays_render_with_defaults() -> None:
    from ewindow_image.pipeline.stages.definition import load_stages

    ctx = template_context(load_config())
    for stage in load_stages(REPO / "stages", ctx):
        if stage.overlay:
            files, _ = render_overlay(REPO / "overlays" / stage.overlay, stage.files, ctx)
            assert files, stage.name
    fstab = {f.path: f for f in render_overlay(REPO / "overlays/system", [], ctx)[0]}["/etc/fstab"]
    assert b"PARTUUID=ee1d0c5e-02  /  " in fstab.content
