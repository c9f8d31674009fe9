"""`dedup scan` interrupted with SIGINT and run again: the second run loads what the first
indexed from the state file, indexes only the rest, and gives the clusters and kept
copies of a fresh scan; a file changed meanwhile is indexed again; a third run matches
nothing again."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dedup import synthetic
from tests.integration.conftest import ROOT

EDITS = ("resize-half", "grey", "rotate-90", "caption", "border", "crop-10")
ORIGINALS = 60
FILES = ORIGINALS + ORIGINALS // 2


@pytest.fixture(scope="module")
def local_stack() -> None:
    """Not the shared stack: `dedup scan` starts its own Triton and keeps its indexes in
    its own process (this overrides the package's fixture that starts the stack)."""


def make_folder(root: Path) -> None:
    """ORIGINALS photos, every other one with an edited copy beside it."""
    root.mkdir(parents=True)
    for i in range(ORIGINALS):
        photo = synthetic.photo(9800 + i)
        (root / f"p{i:03d}.jpg").write_bytes(synthetic.encode(photo, quality=90))
        if i % 2 == 0:
            edit = EDITS[(i // 2) % len(EDITS)]
            data = synthetic.encode(synthetic.EDITS[edit](photo), quality=85)
            (root / f"p{i:03d}-{edit}.jpg").write_bytes(data)


def command(folder: Path, out: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apps.cli", "scan", str(folder), "--json", str(out),
            "--state", str(state), "--workers", "1", *extra]  # fmt: skip


def scan(folder: Path, out: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(folder, out, state, *extra),
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def records(state: Path) -> tuple[int, int]:
    """(files indexed, of them embedded) in the one state file under `state`, if any."""
    files = list(state.glob("*.sqlite"))
    if not files:
        return 0, 0
    db = sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT count(*), count(embedding) FROM files").fetchone()
        return int(row[0]), int(row[1])
    except sqlite3.Error:  # not made yet
        return 0, 0
    finally:
        db.close()


def phase_totals(stderr: str) -> dict[str, int]:
    """phase -> the number of files its progress bar counted (its last line)."""
    return {m[1]: int(m[3]) for m in re.finditer(r"^(\w+) +\[[#.]+\] (\d+)/(\d+)", stderr, re.M)}


def outcome(out: Path) -> list[tuple[Any, ...]]:
    return sorted(
        (e["path"], e["cluster"], e["keep"], e["decision"], e["duplicate_of"], e["status"])
        for e in json.loads(out.read_text())["images"]
    )


def test_an_interrupted_scan_resumes_without_redoing_the_finished_files(tmp_path: Path) -> None:
    folder, state = tmp_path / "photos", tmp_path / "state"
    make_folder(folder)
    before = sorted(p.name for p in folder.iterdir())

    # 1. Interrupted (SIGINT, as Ctrl-C sends) once some files are indexed.
    first = subprocess.Popen(
        command(folder, tmp_path / "first.json", state, "--in-flight", "2"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while records(state)[0] < 10 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    kept, embedded = records(state)
    print(f"interrupted after {kept} of {FILES} files indexed, {embedded} embedded")
    assert 10 <= kept < FILES, (kept, stderr[-2000:])  # interrupted mid-way, some kept
    assert f"interrupted: {kept} of {FILES} files indexed ({embedded} embedded) are kept" in stderr
    assert not (tmp_path / "first.json").exists()

    # A file changed meanwhile (one the first run had indexed) is indexed again.
    changed = folder / "p000.jpg"
    changed.write_bytes(synthetic.encode(synthetic.photo(9800), quality=80))
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))

    # 2. Run again: the kept files are loaded, only the rest (and the changed one) indexed.
    second = scan(folder, tmp_path / "second.json", state)
    assert second.returncode == 1, second.stderr[-3000:]  # duplicates found
    reused = kept - 1
    assert f"resuming: {reused} of {FILES} files were indexed before" in second.stderr
    totals = phase_totals(second.stderr)
    assert totals["indexing"] == FILES - reused, second.stderr
    assert totals["embedding"] <= FILES - (embedded - 1), second.stderr
    assert totals["matching"] == FILES
    assert records(state) == (FILES, FILES)

    # 3. A fresh scan (no state) finds the same clusters and keeps the same copies.
    fresh = scan(folder, tmp_path / "fresh.json", state, "--no-state")
    assert fresh.returncode == 1, fresh.stderr[-3000:]
    assert "resuming" not in fresh.stderr and phase_totals(fresh.stderr)["indexing"] == FILES
    assert outcome(tmp_path / "second.json") == outcome(tmp_path / "fresh.json")

    # 4. Everything in the state: nothing is indexed again, the same result.
    again = scan(folder, tmp_path / "again.json", state, "--quiet")
    assert f"resuming: {FILES} of {FILES} files were indexed before" in again.stderr
    # Nor matched again: every image's candidates are as they were (a few may miss, should
    # an embedding similarity land on a rounding boundary).
    memo = re.search(r"the matcher's work on (\d+) of (\d+) images came from the state",
                     again.stderr)  # fmt: skip
    assert memo and int(memo[2]) == FILES and int(memo[1]) >= FILES - 3, again.stderr
    assert outcome(tmp_path / "again.json") == outcome(tmp_path / "fresh.json")
    # The state lives in its own folder, never in the scanned one.
    assert sorted(p.name for p in folder.iterdir()) == before
