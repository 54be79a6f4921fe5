# SPDX-License-Identifier: MIT
"""Issue 22: recipes come from pull requests and forks, so every field is input. A copy of
packages/ with one generated field: it loads and the field is what the shared check allows,
or it is refused in one line naming the recipe file and the field."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ewindow_image.packages import debian
from ewindow_image.packages.checkout import load as load_checkout
from ewindow_image.packages.recipe import RecipeError, load_recipe

from .budget import examples

REPO = Path(__file__).resolve().parent.parent


def recipe_copy(folder: Path, name: str = "peervpn") -> Path:
    target = folder / "packages" / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "packages" / name, target, symlinks=True)
    return target


def with_field(directory: Path, path: str, value: Any) -> Path:
    manifest = directory / "package.yaml"
    data = yaml.safe_load(manifest.read_text())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    manifest.write_text(yaml.safe_dump(data, allow_unicode=True))
    return directory


def refused_naming(directory: Path, field: str, loader: Any = load_recipe) -> str:
    with pytest.raises(RecipeError) as info:
        loader(directory)
    message = str(info.value)
    assert message.startswith(f"{directory / 'package.yaml'}: {field}: "), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("field", "value"), [
    ("version", "../../../tmp/x"),  # moved the .deb out of the cache
    ("version", ".."),
    ("version", "1.0\nPre-Depends: evil"),  # a field added to DEBIAN/control
    ("revision", "1/../../x"),
    ("summary", "VPN\nPre-Depends: evil"),
    ("homepage", "https://example.org\nPre-Depends: evil"),
    ("homepage", "javascript:alert(1)"),
    ("description", "text\x1b[2J"),
    ("license", "GPL-3.0\nX: y"),
    ("copyright", "2016 Someone\rFiles: *"),
    ("build_depends", ["libc6-dev", "-oDir::Cache::pkgcache=/tmp/x"]),  # an apt-get option
    ("source.url", "file:///etc/shadow"),
    ("source.url", "ftp://example.org/x.tar.gz"),
    ("source.file", "../x.tar.gz"),
    ("source.file", "x{0}.tar.gz"),  # a format field: used to end in an internal error
    ("source.file", "-x.tar.gz"),
])
def test_hostile_recipe_fields_are_refused_naming_the_field(tmp_path: Path, field: str, value: Any) -> None:
    directory = with_field(recipe_copy(tmp_path), field, value)
    shown = "build_depends[1]" if field == "build_depends" else field
    refused_naming(directory, shown)


def test_a_patch_that_is_a_link_is_refused(tmp_path: Path) -> None:
    directory = recipe_copy(tmp_path)
    (directory / "patches/0009-gone.patch").symlink_to("nowhere.patch")  # dangling
    refused_naming(directory, "patches/0009-gone.patch")
    (directory / "patches/0009-gone.patch").unlink()
    (directory / "patches/0009-shadow.patch").symlink_to("/etc/passwd")
    refused_naming(directory, "patches/0009-shadow.patch")


@pytest.mark.parametrize(("field", "value"), [
    ("summary", "agent\nPre-Depends: evil"), ("section", "admin\nEssential: yes"),
    ("description", "a\x00b")])
def test_hostile_checkout_package_fields_are_refused(tmp_path: Path, field: str, value: str) -> None:
    directory = with_field(recipe_copy(tmp_path, "ewindow-agent"), field, value)
    refused_naming(directory, field, load_checkout)


def control_fields(text: str) -> list[str]:
    """The field names of a DEBIAN/control text (continuation lines start with a space)."""
    return [line.split(":", 1)[0] for line in text.splitlines() if line and not line[0].isspace()]


FIELD_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(
    ["1.0", "0.044", "1.0~rc1", "2:1.0", "1.0-1", "a", "https://x.org", "GPL-2.0 OR MIT", "x\ny",
     "{commit}"]))


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["version", "revision", "summary", "description", "homepage", "license",
                              "copyright", "source.url", "source.file"]), value=FIELD_VALUES)
def test_generated_recipe_fields_load_safely_or_are_refused(tmp_path: Path, field: str, value: str) -> None:
    directory = with_field(recipe_copy(tmp_path), field, value)
    try:
        recipe = load_recipe(directory)
    except RecipeError as exc:
        assert str(exc).startswith(f"{directory / 'package.yaml'}: {field}: ") or \
            str(exc).startswith(f"{directory / 'package.yaml'}: {field.split('.')[0]}"), exc
        return
    # what loaded is safe where it is used: a plain .deb name, a control file with the
    # fields this project writes and no other, one-line values
    deb = recipe.deb_name("arm64")
    assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+_[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+_arm64\.deb", deb), deb
    assert os.path.basename(deb) == deb and recipe.source.file == os.path.basename(recipe.source.file)
    control = debian.control(recipe, "arm64", "libc6", 10)
    assert control_fields(control) == ["Package", "Source", "Version", "Architecture", "Maintainer",
                                       "Installed-Size", "Depends", "Section", "Priority", "Homepage",
                                       "X-Ewindow-Source", "Description"], control
    assert recipe.source.url.startswith(("https://", "http://"))
    copyright_text = debian.copyright_file(recipe)
    assert all(line.split(":")[0] in ("Format", "Upstream-Name", "Source", "Comment", "Files",
                                      "Copyright", "License") for line in copyright_text.splitlines()
               if line and not line[0].isspace()), copyright_text


def test_a_hostile_recipe_stops_plan_in_one_line_and_runs_nothing(tmp_path: Path) -> None:
    """End to end: ``build.py plan`` over a checkout whose recipe passes an option to apt-get."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".venv", ".git", "out", "__pycache__",
                                                                 ".mypy_cache", ".ruff_cache"))
    written = tmp_path / "pkgcache"
    with_field(checkout / "packages/peervpn", "build_depends",
               ["libc6-dev", f"-oDir::Cache::pkgcache={written}"])
    result = subprocess.run([sys.executable, str(checkout / "build.py"), "plan", "--cache-dir",
                             str(tmp_path / "cache")], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("==>", "<=="))]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {checkout}/packages/peervpn/package.yaml: build_depends[1]: '-oDir::Cache::pkgcache=")
    assert lines[0].endswith("' is not a Debian package name"), result.stderr
    assert not written.exists()
