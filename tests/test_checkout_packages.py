# SPDX-License-Identifier: MIT
"""The window's own code as Debian packages (packages/ewindow-firstboot, packages/ewindow-agent):
what goes into them, their maintainer scripts, versions from git history, the same bytes from
the same files, and refusals of bad package definitions."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from debian.debian_support import Version
from hypothesis import given
from hypothesis import strategies as st

from ewindow_image.packages import versioning
from ewindow_image.packages.checkout import CheckoutPackages, load
from ewindow_image.packages.recipe import RecipeError, load_recipes
from ewindow_image.pipeline.driver import RepoPaths

REPO = Path(__file__).resolve().parent.parent


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def deb_control(deb: Path, name: str) -> str:
    """A control file of ``deb`` ("" when it has none), as dpkg-deb gives it."""
    tar = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as control:
        try:
            member = control.extractfile(f"./{name}")
        except KeyError:
            return ""
        return member.read().decode() if member else ""


def deb_files(deb: Path) -> set[str]:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].removeprefix("./") for line in listing.splitlines() if not line.startswith("d")}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("cache")
    packages = CheckoutPackages(REPO, REPO / "packages", cache)
    return {p.package.name: packages.ensure(p) for p in packages.plan(sorted(packages.packages))}


def test_the_window_code_is_packaged_with_its_units_and_config(debs: dict[str, Path]) -> None:
    agent, firstboot = debs["ewindow-agent"], debs["ewindow-firstboot"]
    versions = CheckoutPackages(REPO, REPO / "packages", Path("/nonexistent")).versions()
    for name, deb in debs.items():
        assert deb_field(deb, "Package") == name
        assert deb_field(deb, "Version") == versions[name]
        assert deb_field(deb, "Architecture") == "all"
        assert f"usr/share/doc/{name}/copyright" in deb_files(deb)
    assert {f"usr/lib/ewindow/firstboot/{p.relative_to(REPO / 'firstboot')}"
            for p in (REPO / "firstboot").rglob("*.py")} <= deb_files(firstboot)
    assert {"usr/sbin/ewindow-firstboot",
            "usr/lib/systemd/system/ewindow-firstboot.service"} <= deb_files(firstboot)
    assert "usr/lib/ewindow/hardware/agent.py" in deb_files(agent)
    assert not any("__pycache__" in f or f.endswith(".pyc") for d in debs.values() for f in deb_files(d))
    assert "python3-gpiozero" in deb_field(agent, "Depends")
    # a file under /etc is a conffile (an admin's edit survives an upgrade); nothing else is
    assert deb_control(agent, "conffiles").split() == ["/etc/sysctl.d/60-ewindow-ping.conf"]
    postinst = deb_control(agent, "postinst")
    # the units with an [Install] section are enabled, the agent restarted after an upgrade
    assert ("UNITS='ewindow-agent.service ewindow-metrics.socket ewindow-reboot.path "
            "ewindow-restart-vpn.path ewindow-tap-guard.service'") in postinst
    assert "TMPFILES=ewindow-metrics.conf" in postinst
    assert "RESTART='ewindow-agent.service ewindow-tap-guard.service'" in postinst
    assert "SYSUSERS=ewindow-agent.conf" in postinst
    assert "RESTART=''" in deb_control(firstboot, "postinst")  # firstboot is not run again
    # their Python byte-compiled on the window as dh_python3 does, and cleaned before removal
    assert "PYTHON_DIRS=/usr/lib/ewindow/firstboot" in deb_control(firstboot, "postinst")
    assert "PYTHON_DIRS=/usr/lib/ewindow/hardware" in postinst
    assert 'py3compile -p "$PACKAGE" $PYTHON_DIRS' in postinst
    assert "PYTHON_PACKAGE=ewindow-agent" in deb_control(agent, "prerm")
    for deb in debs.values():
        for script in ("postinst", "prerm", "postrm"):
            subprocess.run(["sh", "-n"], input=deb_control(deb, script), text=True, check=True)
        sums = dict(line.split("  ")[::-1] for line in deb_control(deb, "md5sums").splitlines())
        assert set(sums) == deb_files(deb) - {c.lstrip("/") for c in deb_control(deb, "conffiles").split()}


def test_the_same_files_make_the_same_package_whatever_the_umask(debs: dict[str, Path],
                                                                tmp_path: Path) -> None:
    script = ("import os, sys; from pathlib import Path; os.umask(0o077); "
              "from ewindow_image.packages.checkout import CheckoutPackages; "
              f"c = CheckoutPackages(Path({str(REPO)!r}), Path({str(REPO / 'packages')!r}), "
              "Path(sys.argv[1])); "
              "[print(c.ensure(p)) for p in c.plan(sorted(c.packages))]")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    again = {Path(p).name: Path(p).read_bytes() for p in out}
    assert again == {d.name: d.read_bytes() for d in debs.values()}


# --- versions from git ----------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          env=env).stdout


def small_repo(root: Path) -> Path:
    (root / "packages/ewindow-x/root/usr/sbin").mkdir(parents=True)
    (root / "packages/ewindow-x/package.yaml").write_text(
        HEAD + "checkout:\n  code: usr/lib/x\n")
    (root / "packages/ewindow-x/root/usr/sbin/x").write_text("#!/bin/sh\n")
    (root / "code").mkdir()
    (root / "code/a.py").write_text("a = 1\n")
    (root / "README").write_text("r\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "one")
    return root


def version_of(root: Path) -> str:
    return CheckoutPackages(root, root / "packages", root / "cache").versions()["ewindow-x"]


def test_versions_count_the_commits_that_touch_the_package(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    first = version_of(root)
    assert first.endswith(f"+1.g{git(root, 'log', '-1', '--format=%h', '--abbrev=10').strip()}")
    (root / "README").write_text("elsewhere\n")
    git(root, "commit", "-qam", "readme")
    assert version_of(root) == first  # a commit elsewhere: the same package
    (root / "code/a.py").write_text("a = 2\n")
    dirty = version_of(root)
    assert dirty == first + versioning.DIRTY
    git(root, "commit", "-qam", "code")
    second = version_of(root)
    assert Version(first) < Version(dirty) < Version(second) and "+2.g" in second
    (root / "code/new.py").write_text("")  # untracked, but it would go into the package
    assert version_of(root).endswith(versioning.DIRTY)
    # dpkg agrees with python-debian on the order
    subprocess.run(["dpkg", "--compare-versions", first, "lt", second], check=True)


def test_a_copy_without_git_keeps_the_versions_and_a_bare_one_is_refused(tmp_path: Path) -> None:
    versions = CheckoutPackages(REPO, REPO / "packages", tmp_path).versions()
    copy = RepoPaths(REPO).copy_to(tmp_path / "copy").root
    assert CheckoutPackages(copy, copy / "packages", tmp_path).versions() == versions
    (copy / versioning.STAMP).unlink()
    with pytest.raises(versioning.VersionError, match="not a git checkout and has no .package-versions"):
        CheckoutPackages(copy, copy / "packages", tmp_path).versions()
    (copy / versioning.STAMP).write_text('{"ewindow-agent": "1.0; rm -rf /"}')
    with pytest.raises(versioning.VersionError, match="ewindow-agent: missing or not a version"):
        CheckoutPackages(copy, copy / "packages", tmp_path).versions()


def test_a_shallow_clone_is_refused_with_a_hint(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    (root / "code/a.py").write_text("a = 2\n")
    git(root, "commit", "-qam", "two")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{root}", str(shallow)], check=True)
    with pytest.raises(versioning.VersionError, match="shallow clone") as info:
        version_of(shallow)
    assert info.value.hint == "git fetch --unshallow"


@given(st.integers(0, 10**6), st.integers(1, 10**6), st.text("0123456789abcdef", min_size=7, max_size=12),
       st.text("0123456789abcdef", min_size=7, max_size=12), st.booleans())
def test_more_commits_always_give_a_higher_version(count: int, more: int, commit: str, later: str,
                                                  dirty: bool) -> None:
    older, newer = versioning.compose(count, commit, dirty), versioning.compose(count + more, later, False)
    assert versioning.VERSION.match(older) and versioning.VERSION.match(newer)
    assert Version(older) < Version(newer)
    clean, dirty_one = versioning.compose(count, commit, False), versioning.compose(count, commit, True)
    assert Version(clean) < Version(dirty_one)


# --- bad definitions ------------------------------------------------------------------


HEAD = "name: ewindow-x\nsummary: x\ndescription: x\n"


@pytest.mark.parametrize(("text", "message"), [
    (HEAD + "checkout:\n  ../etc: usr/lib/x\n", "must be a folder of the checkout"),
    (HEAD + "checkout:\n  /etc: usr/lib/x\n", "must be a folder of the checkout"),
    (HEAD + "checkout:\n  code: /usr/lib/x\n", "is not a path under usr/"),
    (HEAD + "checkout:\n  code: usr/../../x\n", "is not a path under usr/"),
    (HEAD + "checkout: [code]\n", "checkout: expected a mapping"),
    ("name: ewindow-y\nsummary: x\ndescription: x\ncheckout: {}\n", "must be a Debian package name equal"),
    ("name: ewindow-x\ndescription: x\ncheckout: {}\n", "summary: missing or not text"),
    (HEAD + "checkout: {}\nrestart: ['a; reboot']\n",
     "restart: expected a list of names"),
    (HEAD + "checkout: {}\ndepends: ['python3 (>= 3'] \n",
     "depends: expected a list of names"),
])
def test_bad_package_definitions_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    folder = tmp_path / "ewindow-x"
    folder.mkdir()
    (folder / "package.yaml").write_text(text)
    with pytest.raises(RecipeError, match=message) as info:
        load(folder)
    assert str(info.value).startswith(str(folder / "package.yaml"))


def test_only_regular_files_go_into_a_package(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    (root / "code/link").symlink_to("/etc/shadow")
    packages = CheckoutPackages(root, root / "packages", root / "cache")
    with pytest.raises(RecipeError, match="only regular files go into ewindow-x"):
        packages.plan(["ewindow-x"])


def test_the_source_recipes_are_not_confused_with_checkout_packages() -> None:
    assert set(load_recipes(REPO / "packages")) == {"peervpn", "cjdns"}
    assert set(CheckoutPackages(REPO, REPO / "packages", Path("/nonexistent")).packages) == {
        "ewindow-firstboot", "ewindow-agent", "ewindow-updates"}
    assert shutil.which("dpkg-deb")


def test_a_file_edited_between_plan_and_build_is_not_cached_under_the_old_key(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    packages = CheckoutPackages(root, root / "packages", root / "cache")
    [planned] = packages.plan(["ewindow-x"])
    (root / "code/a.py").write_text("a = 3\n")  # the developer saves a file mid-build
    with pytest.raises(RecipeError, match="its files changed during the build"):
        packages.ensure(planned)
    assert not planned.deb.parent.exists()
    [again] = packages.plan(["ewindow-x"])
    assert packages.ensure(again).is_file() and again.key != planned.key
