# SPDX-License-Identifier: MIT
"""The release files (README "Releases and Raspberry Pi Imager"): the manifest's package
hashes and the comparison with an earlier manifest, the SPDX SBOM (checked by spdx-tools),
the Raspberry Pi Imager list (checked against Imager's schema and the files), and
SHA256SUMS.asc signed and verified by a real gpg with a key made for the test."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ewindow_image.apt.resolver import parse_download_uris
from ewindow_image.config import Config, ConfigLayers, load_config
from ewindow_image.errors import ConfigError, EWindowError
from ewindow_image.image import artifacts as art
from ewindow_image.image import imager, sbom
from ewindow_image.image.assemble import hash_seed, sign_sums
from ewindow_image.image.manifest import (
    DpkgRow,
    InstalledPackage,
    manifest_text,
    package_changes,
    read_versions,
)
from ewindow_image.pipeline.inventory import cached_deb_name

from .release_checks import check_imager_list, check_sbom

EPOCH = 1767225600  # 2026-01-01
DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: *
Copyright: 2001 Someone
License: GPL-2+

Files: lib/*
Copyright: 2002 Other
License: LGPL-2.1+ or Artistic

Files: contrib/ssl.c
License: GPL-2 with OpenSSL exception

Files: debian/*
License: Expat

Files: odd/*
License: Frobnitz-Permissive
 some text of the licence
"""


def package(name: str, version: str = "1.0-1", source: str = "", sha: str = "a" * 64,
            origin: str = "") -> InstalledPackage:
    row = DpkgRow(name, version, "arm64", source or name, version)
    return InstalledPackage(row, sha, origin or f"http://deb.debian.org/debian/pool/main/x/{name}.deb")


def make_tree(root: Path) -> Path:
    docs = root / "usr/share/doc"
    (docs / "example").mkdir(parents=True)
    (docs / "example/copyright").write_text(DEP5)
    (docs / "freeform").mkdir()
    (docs / "freeform/copyright").write_text("This is free software, see the GPL.\n")
    (docs / "libexample1").symlink_to("example")  # Debian policy 12.5
    (docs / "escape").symlink_to("/../../../../etc")  # absolute: stays inside the tree
    return root


def test_debian_licence_names_become_spdx_identifiers() -> None:
    assert sbom.spdx_licence("GPL-2+") == "GPL-2.0-or-later"
    assert sbom.spdx_licence("GPL-2") == "GPL-2.0-only"
    assert sbom.spdx_licence("LGPL-2.1+") == "LGPL-2.1-or-later"
    assert sbom.spdx_licence("Expat") == "MIT"
    assert sbom.spdx_licence("BSD-3-clause") == "BSD-3-Clause"
    assert sbom.spdx_licence("Apache-2.0") == "Apache-2.0"
    assert sbom.spdx_licence("public-domain") is None
    assert sbom.licence_ref("public domain") == "LicenseRef-Debian-public-domain"


def test_a_machine_readable_copyright_file_gives_licences_and_free_form_none(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert sbom.debian_licences(DEP5) == ["Artistic", "Expat", "Frobnitz-Permissive", "GPL-2",
                                          "GPL-2+", "LGPL-2.1+"]
    found = sbom.copyright_file(tree, "libexample1")
    assert found is not None and found.resolve() == (tree / "usr/share/doc/example/copyright").resolve()
    assert sbom.debian_licences((tree / "usr/share/doc/freeform/copyright").read_text()) is None
    assert sbom.copyright_file(tree, "escape") is None and sbom.copyright_file(tree, "missing") is None


def test_the_sbom_is_valid_spdx_with_licences_sources_and_the_source_built_upstream(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    packages = [package("example"), package("libexample1", source="example"), package("freeform"),
                package("lib+plus"), package("lib-plus"),
                package("cjdns", "21.1-0ewindow1", origin="built from https://x/cjdns.tar.gz (commit abc)"),
                package("gone", sha="-", origin="unknown: not on the mirror today")]
    pins = [{"name": "cjdns", "upstream": "https://github.com/cjdelisle/cjdns/archive/abc.tar.gz",
             "commit": "abc", "tree_sha256": "f" * 64, "license": "GPL-3.0-or-later"}]

    def document() -> dict[str, object]:
        return sbom.sbom(image_name="ewindow-trixie-arm64.img", image_sha256="b" * 64,
                         image_version="c0ffee",
                         suite="debian-trixie", epoch=EPOCH, tool="ewindow-image-0.1", packages=packages,
                         tree=tree, source_pins=pins)

    data = document()
    assert json.dumps(data, sort_keys=True) == json.dumps(document(), sort_keys=True)  # deterministic
    path = tmp_path / "x.spdx.json"
    path.write_text(json.dumps(data))
    parsed = check_sbom(path)
    assert parsed.creation_info.created.isoformat().startswith("2026-01-01T00:00:00")
    by_name = {p.name: p for p in parsed.packages}
    declared = str(by_name["example"].license_declared)
    for spdx_id in ("GPL-2.0-or-later", "GPL-2.0-only", "LGPL-2.1-or-later", "MIT", "Artistic-1.0-Perl",
                    "LicenseRef-Debian-Frobnitz-Permissive"):
        assert spdx_id in declared
    assert str(by_name["libexample1"].license_declared) == declared
    assert str(by_name["freeform"].license_declared) == "NOASSERTION"
    assert by_name["libexample1"].source_info == "Debian source package example 1.0-1"
    assert by_name["gone"].checksums == []
    upstream = by_name["cjdns (upstream source)"]
    assert upstream.download_location == pins[0]["upstream"]
    assert str(upstream.license_declared) == "GPL-3.0-or-later"
    generated = [r for r in parsed.relationships if r.relationship_type.name == "GENERATED_FROM"]
    assert [(r.spdx_element_id, r.related_spdx_element_id) for r in generated] == [
        ("SPDXRef-Package-cjdns", upstream.spdx_id)]
    ids = [p.spdx_id for p in parsed.packages]
    assert len(ids) == len(set(ids))  # lib+plus and lib-plus get distinct ids


def test_the_imager_list_is_valid_for_imager_and_its_hashes_are_the_files(tmp_path: Path) -> None:
    image = tmp_path / "ewindow-trixie-arm64.img"
    image.write_bytes(os.urandom(4096))
    download = tmp_path / "ewindow-trixie-arm64.img.xz"
    subprocess.run(["xz", "-k", "-0", str(image)], check=True)
    icon = tmp_path / "ewindow-trixie-arm64.icon.svg"
    icon.write_text(imager.ICON_SVG)
    for base_url in ("", "https://windows.example.org/images"):
        listing = imager.os_list(title="EWindow", description="d", arch="arm64", epoch=EPOCH,
                                 image_size=image.stat().st_size, image_sha256=art.sha256_file(image),
                                 download=download, download_sha256=art.sha256_file(download), icon=icon,
                                 base_url=base_url)
        path = tmp_path / "list.json"
        path.write_text(json.dumps(listing))
        entry = check_imager_list(path, image)
        assert entry["release_date"] == "2026-01-01" and entry["devices"] == ["pi4-64bit", "pi3-64bit"]
        if base_url:
            assert entry["url"] == "https://windows.example.org/images/ewindow-trixie-arm64.img.xz"
        else:
            assert entry["url"] == download.as_uri()
    listing["os_list"][0]["extract_sha256"] = "0" * 64
    path.write_text(json.dumps(listing))
    with pytest.raises(AssertionError):
        check_imager_list(path, image)  # the check does compare


def test_manifest_lines_and_changes_against_an_earlier_release() -> None:
    text = manifest_text([package("bash", "5.2-1"), package("zlib1g", "1:1.3-1")])
    assert text.splitlines()[0] == f"bash\t5.2-1\tarm64\t{'a' * 64}\thttp://deb.debian.org/debian/pool/main/x/bash.deb"
    old_format = "bash\t5.1-1\tarm64\nnano\t7.2\tarm64\npeervpn\t0.044\tarm64\tbuilt from x\n"
    assert package_changes(read_versions(old_format), read_versions(text)) == [
        "bash 5.1-1 → 5.2-1", "nano 7.2 removed", "peervpn 0.044 removed", "zlib1g 1:1.3-1 added"]
    assert package_changes(read_versions(text), read_versions(text)) == []
    hostile = "bash\t5.2\x1b[31mred\tarm64\n\x1b]0;title\x07\t1.0\tall\n# comment\t1\t2\nok-name\t1.0\tall\n"
    assert read_versions(hostile) == {"ok-name": "1.0"}  # nothing else reaches plan's output


@given(st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,20}", fullmatch=True),
                       st.from_regex(r"[0-9][0-9a-z.+~:-]{0,12}", fullmatch=True), max_size=8),
       st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,20}", fullmatch=True),
                       st.from_regex(r"[0-9][0-9a-z.+~:-]{0,12}", fullmatch=True), max_size=8))
def test_a_manifest_reads_back_and_changes_name_every_difference(before: dict[str, str],
                                                                   after: dict[str, str]) -> None:
    text = manifest_text([package(name, version) for name, version in sorted(before.items())])
    assert read_versions(text) == before
    changes = package_changes(before, after)
    differing = {n for n in set(before) | set(after) if before.get(n) != after.get(n)}
    assert len(changes) == len(differing)
    assert all(change.split(" ")[0] in differing for change in changes)


def test_mirror_uris_are_parsed_with_the_epoch_in_the_file_name() -> None:
    output = ("'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1%253a1.3_arm64.deb' "
              f"zlib1g_1%3a1.3_arm64.deb 7 SHA256:{'c' * 64}\nE: noise\n")
    found = parse_download_uris(output)
    assert found[("zlib1g", "1:1.3")].sha256 == "c" * 64 and found[("zlib1g", "1:1.3")].size == 7
    row = DpkgRow("zlib1g", "1:1.3", "arm64", "zlib", "1:1.3")
    assert cached_deb_name(row) == "zlib1g_1%3a1.3_arm64.deb"


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A keyring with one signing key without a passphrase, made by gpg for the test."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "EWindow Release <release@example.org>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], check=True, capture_output=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    yield home, fingerprint
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def release_config(tmp_path: Path, **release: str) -> Config:
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({"release": release}))
    return load_config(ConfigLayers((site,)))


def test_sums_are_signed_with_the_configured_key_and_verify(tmp_path: Path,
                                                            gpg_home: tuple[Path, str]) -> None:
    home, fingerprint = gpg_home
    out = tmp_path / "out"
    out.mkdir()
    paths = art.ArtifactPaths(out, "ewindow-trixie-arm64")
    paths.image.write_bytes(b"image")
    art.write_sums(paths.sums, [paths.image])
    cfg = release_config(tmp_path, signing_key=fingerprint, gnupg_home=str(home))
    sign_sums(cfg, paths)
    verify = ["gpg", "--batch", "--homedir", str(home), "--verify", str(paths.sums_signature),
              str(paths.sums)]
    assert subprocess.run(verify, capture_output=True).returncode == 0
    paths.sums.write_text(paths.sums.read_text().replace("  ", "  x"))  # a changed SHA256SUMS
    assert subprocess.run(verify, capture_output=True).returncode != 0
    unsigned = release_config(tmp_path)
    sign_sums(unsigned, paths)
    assert not paths.sums_signature.exists()  # nothing pretending to be signed
    wrong = release_config(tmp_path, signing_key="0" * 40, gnupg_home=str(home))
    with pytest.raises(EWindowError, match="release.signing_key: gpg could not sign SHA256SUMS"):
        sign_sums(wrong, paths)
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", paths.image.name]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("signing_key", "--homedir=/tmp/x", "not a gpg key"),
    ("signing_key", "ABCD", "not a gpg key"),
    ("title", "EWindow\nInjected", "not one line of text"),
    ("title", "", "not one line of text"),
    ("description", "x" * 301, "at most 300"),
    ("base_url", "javascript:alert(1)", "URL"),
    ("icon_url", "https://a b/icon.png", "URL"),
])
def test_release_settings_are_checked(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        release_config(tmp_path, **{key: value})


def test_the_release_settings_change_no_byte_of_the_image() -> None:
    cfg = load_config()
    published = dataclasses.replace(cfg, release=dataclasses.replace(cfg.release, base_url="https://x.org/"))
    assert published.digest() != cfg.digest()
    assert hash_seed(published) == hash_seed(cfg)
    other_image = dataclasses.replace(cfg, hostname="elsewhere")
    assert hash_seed(other_image) != hash_seed(cfg)
