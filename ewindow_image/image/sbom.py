# SPDX-License-Identifier: MIT
"""The image's software bill of materials, SPDX 2.3 JSON (``NAME.spdx.json``).

One SPDX package for the image, one per installed Debian package (version, source package,
the .deb's sha256 and URL, a purl, the licences its copyright file names), and one per
upstream source built from source (URL, commit, tree hash), which the .deb built from it is
GENERATED_FROM. Licences come from the machine-readable copyright files
(https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/): Debian's short names
mapped to SPDX identifiers where the SPDX list has them (``GPL-2+`` → ``GPL-2.0-or-later``),
others as ``LicenseRef-Debian-…``; a copyright file in free form gives NOASSERTION.

Deterministic: the creation time is SOURCE_DATE_EPOCH and the namespace follows from the
image's sha256, so two builds of one commit write the same file.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from license_expression import ExpressionError, Licensing, get_spdx_licensing

from .manifest import UNKNOWN_SHA256, InstalledPackage

NOASSERTION = "NOASSERTION"
DEP5_FORMAT = re.compile(r"^Format:\s*\S*copyright-format", re.I | re.M)
# Debian's short names that are not SPDX identifiers under any spelling.
DEBIAN_ALIASES = {"expat": "MIT", "apache-2": "Apache-2.0", "psf-2": "PSF-2.0", "python": "PSF-2.0",
                  "artistic": "Artistic-1.0-Perl", "cc0": "CC0-1.0", "mpl-2": "MPL-2.0",
                  "zlib": "Zlib", "bsl-1.0": "BSL-1.0", "gpl": "GPL-1.0-or-later",
                  "lgpl": "LGPL-2.0-or-later"}
DOWNLOAD_URL = re.compile(r"(?:https?|file)://\S+$")
SPLIT_CHOICES = re.compile(r"\s+(?:or|and)\s+|\s*[,|]\s*", re.I)


@cache
def _licensing() -> Licensing:
    return get_spdx_licensing()


def spdx_licence(debian_name: str) -> str | None:
    """A Debian short licence name as an SPDX identifier, or None when SPDX has none."""
    name = debian_name.strip()
    plus = name.endswith("+")
    base = name.rstrip("+")
    base = DEBIAN_ALIASES.get(base.lower(), base)
    candidates = ([f"{base}-or-later", f"{base}.0-or-later", f"{base}+"] if plus
                  else [base, f"{base}-only", f"{base}.0-only", f"{base}.0"])
    for candidate in candidates:
        try:
            expression = _licensing().parse(candidate, validate=True, strict=True)
        except ExpressionError:
            continue
        if expression is not None and len(_licensing().license_keys(expression)) == 1:
            return str(expression)
    return None


def licence_ref(debian_name: str) -> str:
    return "LicenseRef-Debian-" + (re.sub(r"[^A-Za-z0-9.]+", "-", debian_name).strip("-") or "unnamed")


def copyright_file(tree: Path, package: str) -> Path | None:
    """/usr/share/doc/PACKAGE/copyright inside ``tree``; the doc folder may be a symlink to
    another package's (Debian policy 12.5), followed inside the tree only."""
    doc = tree / "usr/share/doc" / package
    for _ in range(4):
        if not doc.is_symlink():
            break
        target = Path(doc.readlink())
        doc = tree / target.relative_to("/") if target.is_absolute() else doc.parent / target
    candidate = doc / "copyright"
    try:
        inside = candidate.resolve().is_relative_to(tree.resolve())
    except (OSError, RuntimeError):
        return None
    return candidate if inside and candidate.is_file() else None


def debian_licences(copyright_text: str) -> list[str] | None:
    """The short names of a machine-readable copyright file's License fields; None for a
    file in free form."""
    if not DEP5_FORMAT.search(copyright_text):
        return None
    names: set[str] = set()
    for match in re.finditer(r"^License:[ \t]*(.*)$", copyright_text, re.M):
        for choice in SPLIT_CHOICES.split(match.group(1)):
            name = re.split(r"\s+with\s+", choice.strip(), flags=re.I)[0].strip()
            if name and " " not in name:
                names.add(name)
    return sorted(names)


def licence_expression(names: Iterable[str], refs: dict[str, str]) -> str:
    """``GPL-2.0-or-later AND MIT``; names SPDX lacks become LicenseRefs, recorded in ``refs``
    (id → Debian name) for the document's extracted licences."""
    ids = set()
    for name in names:
        spdx = spdx_licence(name)
        if spdx is None:
            spdx = licence_ref(name)
            refs[spdx] = name
        ids.add(spdx)
    return " AND ".join(sorted(ids)) if ids else NOASSERTION


def spdx_id(kind: str, name: str, used: set[str]) -> str:
    base = f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name)
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    used.add(candidate)
    return candidate


def purl(package: InstalledPackage, suite: str) -> str:
    row = package.row
    return (f"pkg:deb/debian/{urllib.parse.quote(row.name)}@{urllib.parse.quote(row.version)}"
            f"?arch={row.arch}&distro={suite}")


def sbom(*, image_name: str, image_sha256: str, image_version: str, suite: str, epoch: int,
         tool: str, packages: Iterable[InstalledPackage], tree: Path,
         source_pins: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """The SPDX document, as a dict for ``json.dumps``."""
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    used: set[str] = set()
    image_id = spdx_id("Image", image_name, used)
    refs: dict[str, str] = {}
    entries: list[dict[str, Any]] = [{
        "SPDXID": image_id, "name": image_name, "versionInfo": image_version,
        "downloadLocation": NOASSERTION, "filesAnalyzed": False, "primaryPackagePurpose": "OPERATING-SYSTEM",
        "checksums": [{"algorithm": "SHA256", "checksumValue": image_sha256}],
        "licenseConcluded": NOASSERTION, "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION,
        "supplier": "Organization: EWindow", "comment": f"Debian {suite} for Raspberry Pi, built by {tool}",
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    pins = {pin["name"]: pin for pin in source_pins}
    for package in packages:
        row = package.row
        found = copyright_file(tree, row.name)
        names = debian_licences(found.read_text(errors="replace")) if found else None
        declared = licence_expression(names, refs) if names else NOASSERTION
        entry: dict[str, Any] = {
            "SPDXID": spdx_id("Package", row.name, used), "name": row.name, "versionInfo": row.version,
            "downloadLocation": package.origin if DOWNLOAD_URL.match(package.origin) else NOASSERTION,
            "filesAnalyzed": False, "licenseConcluded": NOASSERTION, "licenseDeclared": declared,
            "copyrightText": NOASSERTION,
            "sourceInfo": f"Debian source package {row.source} {row.source_version}",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(package, suite)}],
        }
        if package.sha256 != UNKNOWN_SHA256:
            entry["checksums"] = [{"algorithm": "SHA256", "checksumValue": package.sha256}]
        entries.append(entry)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": entry["SPDXID"]})
        pin = pins.get(row.name)
        if pin is not None:
            entry["sourceInfo"] = f"built by {tool} from {pin['upstream']} at commit {pin['commit']}"
            upstream: dict[str, Any] = {
                "SPDXID": spdx_id("Upstream", row.name, used), "name": f"{row.name} (upstream source)",
                "versionInfo": pin["commit"], "downloadLocation": pin["upstream"],
                "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
                "licenseDeclared": _pinned_licence(pin.get("license", "")), "copyrightText": NOASSERTION,
                "primaryPackagePurpose": "SOURCE",
                "comment": f"sha256 of the source tree: {pin.get('tree_sha256', 'unknown')}",
            }
            entries.append(upstream)
            relationships.append({"spdxElementId": entry["SPDXID"], "relationshipType": "GENERATED_FROM",
                                  "relatedSpdxElement": upstream["SPDXID"]})
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": f"https://ewindow.org/spdx/{urllib.parse.quote(image_name)}-{image_sha256}",
        "creationInfo": {"created": created, "creators": [f"Tool: {tool}"]},
        "packages": entries, "relationships": relationships,
    }
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": name,
             "extractedText": f"The licence Debian calls {name!r}: see the package's "
                              "/usr/share/doc/PACKAGE/copyright in the image."}
            for ref, name in sorted(refs.items())]
    return document


def _pinned_licence(value: str) -> str:
    spdx = spdx_licence(value) if value else None
    return spdx or NOASSERTION
