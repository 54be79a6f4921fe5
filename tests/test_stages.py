# SPDX-License-Identifier: MIT
from __future__ import annotations

from pathlib import Path

import pytest

from ewindow_image.config import ConfigLayers, load_config, template_context
from ewindow_image.errors import ConfigError
from ewindow_image.pipeline.stages.definition import load_stage, load_stages

REPO = Path(__file__).resolve().parent.parent


def context(*overrides: str) -> dict[str, object]:
    return template_context(load_config(ConfigLayers((), overrides)))


def test_project_stages_load_in_numeric_order() -> None:
    stages = load_stages(REPO / "stages", context())
    names = [s.name for s in stages]
    assert names == sorted(names)
    assert names[0] == "00-base" and stages[0].bootstrap
    assert not any(s.bootstrap for s in stages[1:])
    base = stages[0]
    for package in ("linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "openssh-server",
                    "python3-gpiozero", "systemd-sysv"):
        assert package in base.packages


def test_extra_packages_get_a_late_stage_of_their_own() -> None:
    stages = {s.name: s for s in load_stages(REPO / "stages", context("extra_packages=[tmux, htop]"))}
    assert stages["45-extra"].packages == ("tmux", "htop")
    assert "tmux" not in stages["00-base"].packages
    assert load_stages(REPO / "stages", context())[0].packages == stages["00-base"].packages


def test_admin_user_is_templated_into_paths() -> None:
    stages = {s.name: s for s in load_stages(REPO / "stages", context("admin.user=ops"))}
    access = stages["30-access"]
    paths = {f.path: f for f in access.files}
    keys = paths["/home/ops/.ssh/authorized_keys"]
    assert keys.mode == 0o600 and keys.owner == "ops" and keys.group == "ops"
    assert any("useradd" in cmd and cmd.endswith(" -- ops") for cmd in access.host)


def stage_dir(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "50-test"
    folder.mkdir()
    (folder / "stage.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("description: x\npackages: tinc\n", "packages: expected a list of strings"),
        ("description: x\npakages: [tinc]\n", "pakages: unknown key"),
        ("packages: [tinc]\n", "description: missing"),
        ("description: x\nfiles:\n  - path: etc/x\n", "files[0].path: 'etc/x' must be absolute"),
        ("description: x\nfiles:\n  - path: /x\n    mode: rw\n", "files[0].mode: 'rw' is not an octal mode"),
        ("description: {{ nope }}\n", "line 1: 'nope' is undefined"),
        ("description: x\ncopy:\n  - source: /abs\n    target: /x\n",
         "copy[0].source: '/abs' must be relative"),
        ("description: x\ncopy:\n  - firstboot\n", "copy[0]: expected a mapping {source, target}"),
        ("description: x\nfiles: [/etc/x]\n", "files[0]: expected a mapping {path, mode, owner, group}"),
    ],
)
def test_bad_stage_yaml_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    folder = stage_dir(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_stage(folder, context())
    assert str(info.value).startswith(f"{folder / 'stage.yaml'}: {field}")


def test_only_the_first_stage_bootstraps(tmp_path: Path) -> None:
    for name in ("00-a", "10-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "stage.yaml").write_text("description: x\nbootstrap: true\n")
    with pytest.raises(ConfigError, match="exactly the first stage"):
        load_stages(tmp_path, context())


def test_plan_reasons_put_requested_packages_before_dependencies() -> None:
    from ewindow_image.pipeline.plan import diff_inputs

    old = {"stages/45-extra/stage.yaml (rendered)": "a", "package libc6": "2.41-1"}
    new = {"stages/45-extra/stage.yaml (rendered)": "b", "package libc6": "2.41-2",
           "package libevent-core-2.1-7t64": "2.1.12", "package tmux": "3.5a-3"}
    assert diff_inputs(old, new, ("tmux",)) == [
        "stages/45-extra/stage.yaml (rendered) changed",
        "package tmux added",
        "package libc6 2.41-1 → 2.41-2",
        "package libevent-core-2.1-7t64 added",
    ]
