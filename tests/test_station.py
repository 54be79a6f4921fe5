# SPDX-License-Identifier: MIT
"""The flashing station (issue 19), with the kernel's real block events: a loop device
attached to a file is a card put in, detached a card pulled. Loop devices are not removable,
so every station here is started with ``--test-devices '/dev/loop*'`` (test-only, README).

To act at a given moment, a test pauses a process with SIGSTOP (the station while a card
arrives and is mounted, bmaptool while a card is pulled) and lets it go on with SIGCONT;
what happens in between is what a slow desktop or a fast hand would do."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ewindow_image.log import terminal_safe

from .conftest import REPO, Built, requires_root

pytestmark = [pytest.mark.slow, requires_root]
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
GIB = 1 << 30


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


class Cards:
    """Loop devices standing in for cards; all detached at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.attached: list[str] = []

    def file(self, name: str, size: int) -> Path:
        path = self.folder / f"{name}.card"
        subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
        return path

    def insert(self, backing: Path, *options: str) -> str:
        device = sh("losetup", "--find", "--show", *options, str(backing))
        self.attached.append(device)
        return device

    def pull(self, device: str) -> None:
        """As a card pulled from its reader: the medium is gone (size 0), then the device.
        (losetup -d alone waits while bmaptool holds the device open, loop(4).)"""
        backing = sh("losetup", "--noheadings", "-O", "BACK-FILE", device)
        subprocess.run(["truncate", "-s", "0", backing], check=True)
        subprocess.run(["losetup", "--set-capacity", device], check=True)
        subprocess.run(["losetup", "-d", device], check=False)

    def add_partitions(self, device: str) -> None:
        """This kernel reads no partition table by itself; partitions added by hand outlive
        the loop device's file (loop(4)), so stale ones go first and these go at the end."""
        subprocess.run(["partx", "--delete", device], check=False, capture_output=True)
        sh("partx", "--add", device)

    def detach_all(self) -> None:
        for device in self.attached:
            subprocess.run(["partx", "--delete", device], check=False, capture_output=True)
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


@pytest.fixture
def cards(tmp_path: Path) -> Iterator[Cards]:
    found = Cards(tmp_path)
    try:
        yield found
    finally:
        found.detach_all()


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_station_outlives_its_test() -> Iterator[None]:
    """A test that fails leaves no station behind to take the next test's cards."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Station:
    def __init__(self, built: Built, tmp_path: Path, inventory: str, *args: str) -> None:
        self.log = tmp_path / "station-log.jsonl"
        self.output = tmp_path / "station.out"
        inventory_file = tmp_path / "inventory.yaml"
        inventory_file.write_text(inventory)
        inventory_file.chmod(0o600)
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / "build.py"), "station", "-c", str(built.site), "--image",
                 str(built.image), "--inventory", str(inventory_file), "--log", str(self.log),
                 "--test-devices", "/dev/loop*", *args], stdout=out, stderr=subprocess.STDOUT, text=True)
        STARTED.append(self.process)
        assert wait_for(lambda: "watching for cards" in self.text(), 60), self.text()

    def text(self) -> str:
        return self.output.read_text()

    def wait(self, timeout: float = 180) -> int:
        return self.process.wait(timeout=timeout)

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    @contextmanager
    def paused(self) -> Iterator[None]:
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


def wait_for(predicate: Callable[[], object], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def bmaptool_writing(device: str) -> int | None:
    """The pid of the bmaptool writing ``device``, once it has begun to write."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"bmaptool" in a for a in argv[:2]) and device.encode() in argv:
            return int(entry.name)
    return None


def written_sectors(device: str) -> int:
    return int(Path(f"/sys/class/block/{Path(device).name}/stat").read_text().split()[6])


def paused_while_writing(device: str) -> int:
    """bmaptool on ``device``, stopped after its first blocks have reached the card."""
    assert wait_for(lambda: bmaptool_writing(device) is not None and written_sectors(device) > 0, 60)
    pid = bmaptool_writing(device)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def name_on_card(device: str) -> str:
    table = json.loads(sh("sfdisk", "--json", device))["partitiontable"]
    offset = table["partitions"][0]["start"] * 512
    text = subprocess.run(["mtype", "-i", f"{device}@@{offset}", "::/ewindow/deployment.json"],
                          check=True, capture_output=True, text=True, env=MTOOLS).stdout
    data = json.loads(text)
    assert isinstance(data, dict)
    return str(data.get("hostname", "")) + "|" + ",".join(n["ssid"] for n in data["wifi"]["networks"])


def by_card(entries: list[dict[str, object]]) -> dict[str, tuple[str, str, str]]:
    """Result, name and error by card (its file's name: a device name is reused)."""
    return {Path(str(e["backing_file"])).stem: (str(e["result"]), str(e["name"]), str(e["error"]))
            for e in entries}


def digest(path: Path | str, start: int = 0, length: int | None = None) -> str:
    found = hashlib.sha256()
    with open(path, "rb") as stream:
        stream.seek(start)
        left = length if length is not None else 1 << 62
        while left > 0 and (chunk := stream.read(min(1 << 22, left))):
            found.update(chunk)
            left -= len(chunk)
    return found.hexdigest()


INVENTORY = ("- lab-1\n- hostname: cafe-1\n  wifi:\n    country: FR\n"
             "    networks: [{ssid: cafe-guests, psk: 'cafe passphrase 1'}]\n- lab-2\n")


def test_two_cards_written_at_once_each_its_own_name_and_a_present_disk_untouched(
        built: Built, tmp_path: Path, cards: Cards) -> None:
    present_file = cards.file("present", 2 * GIB)
    with present_file.open("r+b") as stream:
        stream.write(os.urandom(1 << 20))  # not an EWindow card: someone's data
    present = cards.insert(present_file)
    before = digest(present_file)
    station = Station(built, tmp_path, INVENTORY, "--parallel", "2", "--count", "2")
    first, second = cards.insert(cards.file("a", 2 * GIB)), cards.insert(cards.file("b", 2 * GIB))
    assert station.wait() == 0, station.text()
    names = {name_on_card(first), name_on_card(second)}
    assert names == {"lab-1|", "cafe-1|cafe-guests"}, station.text()  # the site has no Wi-Fi of its own
    entries = station.entries()
    assert sorted((e["device"], e["result"]) for e in entries) == [(first, "written"), (second, "written")]
    assert {e["name"] for e in entries} == {"lab-1", "cafe-1"}
    image_sha256 = digest(built.image)
    for entry in entries:
        assert entry["image_sha256"] == image_sha256 and entry["size"] == 2 * GIB
        assert entry["backing_file"] == str(tmp_path / ("a.card" if entry["device"] == first else "b.card"))
        assert isinstance(entry["first_byte_s"], float) and isinstance(entry["after_last_byte_s"], float)
    # the root file system on the card is the image's, byte for byte (bmaptool's verified copy)
    table = json.loads(sh("sfdisk", "--json", str(built.image)))["partitiontable"]
    root = table["partitions"][1]["start"] * 512
    size = built.image.stat().st_size - root
    assert digest(first, root, size) == digest(built.image, root, size)
    assert digest(present_file) == before and present not in station.text()
    assert "\x1b" not in station.text()  # in a file: plain lines, no escape sequences
    # the next station hands out what is left
    again = Station(built, tmp_path, INVENTORY, "--parallel", "1", "--count", "1")
    third = cards.insert(cards.file("c", 2 * GIB))
    assert again.wait() == 0, again.text()
    assert name_on_card(third) == "lab-2|"


def test_faults_each_one_line_and_the_station_goes_on(built: Built, tmp_path: Path, cards: Cards) -> None:
    station = Station(built, tmp_path, INVENTORY, "--parallel", "2", "--count", "6")
    # a read-only card (its lock switch), and one too small for the image
    cards.insert(cards.file("locked", 2 * GIB), "--read-only")
    cards.insert(cards.file("small", GIB))
    assert wait_for(lambda: len(station.entries()) == 2, 60), station.text()
    # an old partition mounted when the card arrives (ext4: this kernel has no vfat)
    with station.paused():
        old = cards.file("old", 2 * GIB)
        subprocess.run(["sfdisk", "-q", str(old)], input="label: dos\nstart=2048, size=262144, type=83\n",
                       text=True, check=True)
        sh("mkfs.ext4", "-q", "-F", "-E", f"offset={2048 * 512}", str(old), "128M")
        mounted = cards.insert(old)
        cards.add_partitions(mounted)
        assert wait_for(lambda: Path(f"{mounted}p1").exists(), 10)
        mountpoint = tmp_path / "automount"
        mountpoint.mkdir()
        sh("mount", f"{mounted}p1", str(mountpoint))
    assert wait_for(lambda: len(station.entries()) == 3, 120), station.text()
    assert str(mountpoint) not in Path("/proc/mounts").read_text()
    # one card pulled while it is written, the other written meanwhile
    pulled = cards.insert(cards.file("pulled", 2 * GIB))
    writer = paused_while_writing(pulled)
    cards.insert(cards.file("kept", 2 * GIB))
    cards.pull(pulled)
    os.kill(writer, signal.SIGCONT)
    assert wait_for(lambda: len(station.entries()) == 5, 120), station.text()
    # the pulled card's name is given back: the next card gets it
    cards.insert(cards.file("last", 2 * GIB))
    assert station.wait() == 1, station.text()
    results = by_card(station.entries())
    assert results["locked"][0] == "refused"
    assert "read-only: is the card's lock switch on?" in results["locked"][2]
    assert results["small"][0] == "refused"
    assert "holds 1.0 GiB, the image needs 1.4 GiB" in results["small"][2]
    assert {results["locked"][1], results["small"][1]} == {"lab-1", "cafe-1"}
    assert results["old"][:2] == ("written", "lab-1")  # both names had come back
    assert f"unmounting {mountpoint} ({mounted}p1) before writing" in station.text()
    assert results["pulled"][:2] == ("pulled", "cafe-1")
    assert "pulled while it was written" in results["pulled"][2]
    assert results["kept"][:2] == ("written", "lab-2")
    assert results["last"][:2] == ("written", "cafe-1")
    # one line each for the three that failed (device names are reused: /dev/loopN)
    given_back = [ln for ln in station.text().splitlines()
                  if ln.startswith("/dev/loop") and "given back" in ln]
    assert len(given_back) == 3, given_back
    assert "Traceback" not in station.text()


def test_a_card_gone_before_its_turn_and_ctrl_c_with_two_cards_in_progress(
        built: Built, tmp_path: Path, cards: Cards) -> None:
    station = Station(built, tmp_path, INVENTORY + "- lab-3\n", "--parallel", "2")
    first = cards.insert(cards.file("a", 2 * GIB))
    first_writer = paused_while_writing(first)
    second = cards.insert(cards.file("b", 2 * GIB))
    second_writer = paused_while_writing(second)
    # no writer free: the third card waits, and is pulled before its turn
    waiting = cards.insert(cards.file("c", 2 * GIB))
    assert wait_for(lambda: f"{waiting}: card in (lab-2)" in station.text(), 30), station.text()
    cards.pull(waiting)
    os.kill(first_writer, signal.SIGCONT)
    assert wait_for(lambda: len(station.entries()) == 2, 120), station.text()
    fourth = cards.insert(cards.file("d", 2 * GIB))
    fourth_writer = paused_while_writing(fourth)
    # Ctrl-C with two cards in progress
    station.process.send_signal(signal.SIGINT)
    for writer in (second_writer, fourth_writer):
        os.kill(writer, signal.SIGCONT)
    assert station.wait(60) == 130, station.text()
    results = by_card(station.entries())
    assert results["a"][:2] == ("written", "lab-1")
    assert results["c"][:2] == ("pulled", "lab-2") and "went away before it was written" in results["c"][2]
    assert results["b"][:2] == ("interrupted", "cafe-1")
    assert results["d"][:2] == ("interrupted", "lab-2")
    assert bmaptool_writing(second) is None and bmaptool_writing(fourth) is None
    assert "the cards being written are incomplete" in station.text()
    # their names were given back: the next station starts with cafe-1
    again = Station(built, tmp_path, INVENTORY, "--parallel", "1", "--count", "1")
    fifth = cards.insert(cards.file("e", 2 * GIB))
    assert again.wait() == 0, again.text()
    assert name_on_card(fifth) == "cafe-1|cafe-guests"


def test_bmaptool_failing_is_one_line_and_gives_the_name_back(
        built: Built, tmp_path: Path, cards: Cards) -> None:
    """An image whose data no longer matches its bmap (a bad copy): bmaptool's own checksum
    check fails the card, and the station says why in one line."""
    image_dir = tmp_path / "image"
    image_dir.mkdir()
    image = image_dir / built.image.name
    subprocess.run(["cp", "--sparse=always", str(built.image), str(image)], check=True)
    subprocess.run(["cp", str(built.path(".img.bmap")), str(image_dir)], check=True)
    table = json.loads(sh("sfdisk", "--json", str(image)))["partitiontable"]
    with image.open("r+b") as stream:  # a byte of the boot partition's FAT, which bmap maps
        stream.seek(table["partitions"][0]["start"] * 512 + 512 + 17)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0xFF]))
    copy = Built(image_dir, built.site, built.public_key)
    station = Station(copy, tmp_path, INVENTORY, "--parallel", "1", "--count", "1")
    cards.insert(cards.file("a", 2 * GIB))
    assert station.wait() == 1, station.text()
    (result, name, error), = by_card(station.entries()).values()
    assert (result, name) == ("failed", "lab-1"), station.text()
    assert "bmaptool failed (exit status 1): " in error and "checksum" in error.lower(), error
    assert [ln for ln in station.text().splitlines() if "given back" in ln] == [
        terminal_safe(f"{station.entries()[0]['device']}: failed; lab-1 given back: {error}")]
