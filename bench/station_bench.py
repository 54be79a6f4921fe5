# SPDX-License-Identifier: MIT
"""The flashing station's bench (``bench/run.py station``; run.py imports it): four cards (loop devices on
files) written by one station four at once, against the same four written one after another
with ``build.py flash``, in one run; and the station's own overhead per card, from its
station log: from the card's event to its first written block, and from the last block
bmaptool wrote to "done" (personalised and recorded)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CARDS = 4
CARD_BYTES = 2 << 30


def _loop(backing: Path) -> str:
    return subprocess.run(["losetup", "--find", "--show", str(backing)], check=True, capture_output=True,
                          text=True).stdout.strip()


def _detach(devices: list[str]) -> None:
    for device in devices:
        subprocess.run(["losetup", "-d", device], check=False)


def _fresh_cards(folder: Path, tag: str) -> list[Path]:
    found = []
    for number in range(CARDS):
        path = folder / f"{tag}-{number}.card"
        path.unlink(missing_ok=True)
        subprocess.run(["truncate", "-s", str(CARD_BYTES), str(path)], check=True)
        found.append(path)
    return found


def serial_flash(repo: Path, image: Path, site: Path, folder: Path) -> float:
    devices = [_loop(p) for p in _fresh_cards(folder, "serial")]
    try:
        started = time.monotonic()
        for device in devices:
            subprocess.run([sys.executable, str(repo / "build.py"), "flash", device, "--image", str(image),
                            "-c", str(site), "--force"], check=True, capture_output=True)
        return time.monotonic() - started
    finally:
        _detach(devices)


def station(repo: Path, image: Path, site: Path, folder: Path) -> tuple[float, list[dict[str, float]]]:
    """Seconds from the first card in to the station's end, and its log entries."""
    record = folder / "station-log.jsonl"
    record.unlink(missing_ok=True)
    output = folder / "station.out"
    cards = _fresh_cards(folder, "station")
    with output.open("w") as out:
        process = subprocess.Popen([sys.executable, str(repo / "build.py"), "station", "--image", str(image),
                                    "-c", str(site), "--parallel", str(CARDS), "--count", str(CARDS),
                                    "--log", str(record), "--test-devices", "/dev/loop*"],
                                   stdout=out, stderr=subprocess.STDOUT)
    devices: list[str] = []
    try:
        while "watching for cards" not in output.read_text():
            if process.poll() is not None:
                raise RuntimeError(output.read_text())
            time.sleep(0.05)
        started = time.monotonic()
        devices = [_loop(p) for p in cards]
        if process.wait(timeout=600) != 0:
            raise RuntimeError(output.read_text())
        seconds = time.monotonic() - started
    finally:
        _detach(devices)
    return seconds, [json.loads(line) for line in record.read_text().splitlines()]


def bench_station(repo: Path, image: Path) -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="ewindow-bench-station-") as tmp_name:
        folder = Path(tmp_name)
        site = folder / "site.yaml"
        site.write_text("{}\n")
        serial = serial_flash(repo, image, site, folder)
        parallel, entries = station(repo, image, site, folder)
    first = [float(e["first_byte_s"]) for e in entries]
    after = [float(e["after_last_byte_s"]) for e in entries]
    speeds = [float(e["mb_per_s"]) for e in entries]
    return [
        (f"{CARDS} cards, build.py flash one after another", serial, "what an admin did before"),
        (f"{CARDS} cards, one station, {CARDS} at once", parallel,
         f"from the first card in to the end; {statistics.mean(speeds):.0f} MB/s per card "
         f"({min(speeds):.0f}–{max(speeds):.0f})"),
        ("station: event to first block, median", statistics.median(first), f"max {max(first):.2f} s"),
        ("station: last block to done, median", statistics.median(after), f"max {max(after):.2f} s"),
    ]
