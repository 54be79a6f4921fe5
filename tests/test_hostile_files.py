# SPDX-License-Identifier: MIT
"""Issue 22: image files and file-system objects given as paths. Each case ends in a clear
one- or two-line error or a correct success, and nothing is written outside its own folder
(the card's settings land on the card named, or nowhere)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ewindow_image.errors import EWindowError
from ewindow_image.imagefiles import tool_path

from .budget import examples
from .test_personalise import MTOOLS, card_file, cli, site, small_image

__all__ = ["site"]  # the fixture, imported for the tests below


def image_at(path: Path, image_settings: dict[str, object] | None = None) -> Path:
    """small_image, made in a folder of its own (its mtools calls need a plain path) and
    moved to ``path``."""
    build = Path(tempfile.mkdtemp(dir=path.parent.parent if "@@" in os.fspath(path.parent) else path.parent))
    made = small_image(build / "x.img", image_settings)
    os.replace(made, path)
    shutil.rmtree(build)
    return path


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode in (1, 2), result
    assert 1 <= len(lines) <= 2 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def tree_listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime in ns: what a run changed."""
    return {os.fspath(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_a_path_with_at_at_is_refused_and_nothing_lands_beside_it(tmp_path: Path, site: Path) -> None:
    folder = tmp_path / "at@@0"
    folder.mkdir()
    image = image_at(folder / "ewindow.img")
    before = tree_listing(tmp_path)
    result = cli("personalise", str(image), "-c", str(site))
    one_line_error(result, "'@@'", "mtools reads FILE@@OFFSET", "rename")
    assert not (tmp_path / "at").exists()  # mtools would have written the settings there
    assert tree_listing(tmp_path) == before


def test_a_name_mtools_would_hand_to_a_shell_is_refused_and_runs_nothing(tmp_path: Path, site: Path) -> None:
    """Found by the long run: mtools expands an image name with $ or * through /bin/sh."""
    image = image_at(tmp_path / "card$(touch PWNED).img")
    result = subprocess.run([*cli_argv(), "personalise", image.name, "-c", str(site)], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    one_line_error(result, "which mtools hands to a shell")
    assert not (tmp_path / "PWNED").exists()


def test_a_name_that_ends_in_at_is_refused(tmp_path: Path, site: Path) -> None:
    """Found by the long run: "@" + mtools' "@@OFFSET" is "@@@OFFSET", split at the first "@@"."""
    image = image_at(tmp_path / "card@")
    one_line_error(cli("personalise", str(image), "-c", str(site)), "the path ends in '@'")


def test_a_valid_image_whose_name_starts_with_a_dash_is_personalised(tmp_path: Path, site: Path) -> None:
    image_at(tmp_path / "-w.img")
    result = subprocess.run([*cli_argv(), "personalise", "./-w.img", "-c", str(site)], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(card_file(tmp_path / "-w.img", "deployment.json"))["format"] == 1


def cli_argv() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve().parent.parent / "build.py")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "loop", "dangling", "folder", "chardev", "socket"])
def test_file_system_objects_that_are_no_image_are_refused_at_once(
        tmp_path: Path, site: Path, kind: str) -> None:
    path = tmp_path / "card.img"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink("card2.img", path)
        os.symlink("card.img", tmp_path / "card2.img")
    elif kind == "dangling":
        os.symlink("gone.img", path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "chardev":
        os.symlink("/dev/null", path)
    else:
        import socket
        server = socket.socket(socket.AF_UNIX)
        server.bind(os.fspath(path))
    expected = {"fifo": "a FIFO", "loop": "a symlink loop", "dangling": "a dangling symlink",
                "folder": "a folder", "chardev": "a character device", "socket": "a socket"}[kind]
    result = cli("personalise", str(path), "-c", str(site))
    one_line_error(result, f"{path}: {expected}, not" if kind not in ("loop", "dangling") else expected)
    refused = cli("boot-test", str(path), "-c", str(site))
    one_line_error(refused, expected)


@pytest.mark.parametrize("size", ["36M", "50M", "71M"])
def test_an_image_cut_short_is_refused(tmp_path: Path, site: Path, size: str) -> None:
    image = small_image(tmp_path / "ewindow.img")
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    before = tree_listing(tmp_path)
    result = cli("personalise", str(image), "-c", str(site))
    one_line_error(result, "its partition table needs 75497472", "cut short")
    assert tree_listing(tmp_path) == before


def test_a_padded_image_is_fine_but_not_against_its_bmap(tmp_path: Path, site: Path) -> None:
    image = small_image(tmp_path / "ewindow.img")
    subprocess.run(["bmaptool", "create", "-o", f"{image}.bmap", str(image)], check=True,
                   capture_output=True)
    assert cli("personalise", str(image), "-c", str(site)).returncode == 0
    subprocess.run(["truncate", "-s", "80M", str(image)], check=True)  # larger than its table
    result = cli("personalise", str(image), "-c", str(site))
    one_line_error(result, f"{image}.bmap: ImageSize: 75497472 bytes, but ewindow.img has 83886080")
    Path(f"{image}.bmap").unlink()
    assert cli("personalise", str(image), "-c", str(site)).returncode == 0


@pytest.mark.parametrize("garbage", [b"\x55\xaa" * 256, bytes(range(256)) * 2, b"\x00" * 446 + b"\xff" * 66])
def test_a_garbage_partition_table_is_refused(tmp_path: Path, site: Path, garbage: bytes) -> None:
    image = small_image(tmp_path / "ewindow.img")
    with image.open("r+b") as stream:
        stream.write(garbage)
    result = cli("personalise", str(image), "-c", str(site))
    one_line_error(result, str(image))


@pytest.mark.parametrize("content", [b"\xff\xfe{\"vpn\": {}}", None])
def test_an_image_with_an_unreadable_firstboot_json_is_personalised_unchecked(
        tmp_path: Path, site: Path, content: bytes | None) -> None:
    image = small_image(tmp_path / "ewindow.img", {"vpn": {"backends": ["peervpn"]}})
    # replace the image's settings file with non-UTF-8 bytes, or with a folder
    offset = f"{image}?offset={73728 * 512}"
    subprocess.run(["debugfs", "-w", "-R", "rm /etc/ewindow/firstboot.json", offset], check=True,
                   capture_output=True)
    if content is None:
        subprocess.run(["debugfs", "-w", "-R", "mkdir /etc/ewindow/firstboot.json", offset], check=True,
                       capture_output=True)
    else:
        local = tmp_path / "bad.json"
        local.write_bytes(content)
        subprocess.run(["debugfs", "-w", "-R", f"write {local} /etc/ewindow/firstboot.json", offset],
                       check=True, capture_output=True)
    result = cli("personalise", str(image), "-c", str(site))
    assert result.returncode == 0, result.stderr
    assert "the VPN backends it carries were not checked" in result.stderr
    assert "Traceback" not in result.stderr


def test_flash_on_a_symlink_loop_says_so(tmp_path: Path, site: Path) -> None:
    loop = tmp_path / "sdz"
    os.symlink("sdz", loop)
    result = cli("flash", str(loop), "-c", str(site), "--image", str(tmp_path / "none.img"))
    one_line_error(result, "a symlink loop")


# names with characters that mean something to a tool or a shell: each either works or is
# refused for a named reason, and the settings never land anywhere but on the image named
NAME = st.text(st.sampled_from("ab-@:? \n.'\"$*(=,+_"), min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..") and "/" not in n)


@settings(max_examples=examples(12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAME)
def test_odd_image_names_work_or_are_refused_for_a_reason(tmp_path: Path, site: Path, name: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    image_at(folder / name)
    before = {p.name for p in folder.iterdir()} - {name}
    result = subprocess.run([*cli_argv(), "personalise", f"./{name}", "-c", str(site)], cwd=folder,
                            capture_output=True, text=True, check=False)
    absolute = os.path.abspath(folder / name)
    if "@@" in absolute or absolute.endswith("@") or set(absolute) & set("?$*'\"\n("):
        one_line_error(result, "the path ")
    else:
        assert result.returncode == 0, result.stderr
        assert json.loads(subprocess.run(
            ["mtype", "-i", f"{folder / name}@@{8192 * 512}", "::/ewindow/deployment.json"],
            env=MTOOLS, capture_output=True, check=True).stdout)["format"] == 1
    assert {p.name for p in folder.iterdir()} - {name} == before  # nothing beside it


@settings(max_examples=examples(100))
@given(st.text(max_size=30))
def test_tool_paths_are_absolute_or_refused(text: str) -> None:
    if not text or "\0" in text:
        return
    try:
        path = tool_path(Path(text))
    except EWindowError as exc:
        absolute = os.path.abspath(text)
        shell = set(absolute) & set("$*?[]{}()`~\\|;&<>!'\"\n")
        assert "@@" in absolute or absolute.endswith("@") or shell, exc
        return
    assert os.fspath(path).startswith("/") and "@@" not in os.fspath(path) + "@"


def test_an_out_folder_mtools_would_hand_to_a_shell_is_refused_before_the_build(tmp_path: Path) -> None:
    out = tmp_path / "out$(touch PWNED)"
    result = subprocess.run([*cli_argv(), "build", "--out", str(out)], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    one_line_error(result, "which mtools hands to a shell")
    assert "==>" not in result.stderr and not (tmp_path / "PWNED").exists()
