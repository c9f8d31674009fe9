"""`dedup scan DIR` as a user runs it: the CLI, its own Milvus Lite and Triton (no `make up`
needed), a folder with edits, hard negatives, bad files, nested folders and odd names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from dedup import synthetic
from dedup.report import gallery
from tests.integration.conftest import ROOT

# The edits every stage is meant to catch (hashes, embedding, geometry).
EDITS = ("resize-half", "grey", "rotate-90", "caption", "border", "crop-10")


def make_folder(root: Path) -> dict[str, str]:
    """Write the test folder; returns relative path -> expected group (None-like "" for
    files that cannot be read)."""
    groups: dict[str, str] = {}

    def put(name: str, data: bytes, group: str) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        groups[name] = group

    for i in range(2):
        original = synthetic.photo(9300 + i)
        put(f"trip {i}/original.jpg", synthetic.encode(original, quality=92), f"p{i}")
        for n, edit in enumerate(EDITS):
            fmt, ext = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))[(i + n) % 3]
            data = synthetic.encode(synthetic.EDITS[edit](original), fmt, quality=85)
            put(f"trip {i}/edits/{edit}.{ext}", data, f"p{i}")
    # A copy whose name is markup: the gallery must show it as text.
    put("trip 1/<i>copy</i> & more.jpg", (root / "trip 1/original.jpg").read_bytes(), "p1")
    # Unrelated photos, one of them under a name with spaces and non-ASCII letters.
    put("ünïcode näme ✓.jpg", synthetic.encode(synthetic.photo(9400)), "u0")
    put("deep/er/still/u1.jpg", synthetic.encode(synthetic.photo(9401)), "u1")
    # A design and its dark version: alike in layout, not a copy of each other.
    put("designs/light.png", synthetic.encode(synthetic.wallpaper(93), "PNG"), "light")
    put("designs/dark.png", synthetic.encode(synthetic.wallpaper(93, dark=True), "PNG"), "dark")
    # Files that are not readable images: each must still get an entry with its status.
    whole = synthetic.encode(synthetic.photo(9402))
    put("broken.jpg", whole[: len(whole) // 3], "")
    put("notes/readme.txt", b"not an image at all\n", "")
    put("empty.png", b"", "")
    return groups


def run_scan(folder: Path, out: Path, html: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.cli",
            "scan",
            str(folder),
            "--json",
            str(out),
            "--html",
            str(html),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # The scan's state (apps.scan.state) beside the test's files, not in ~/.cache.
        env=os.environ | {"XDG_CACHE_HOME": str(out.parent / "cache")},
    )


def test_scan_judges_every_file_of_a_folder(tmp_path: Path) -> None:
    folder, out, html = tmp_path / "photos", tmp_path / "scan.json", tmp_path / "gallery"
    expected = make_folder(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))

    done = run_scan(folder, out, html)
    assert done.returncode == 1, done.stderr[-3000:]  # duplicates found
    assert "indexing" in done.stderr and "img/s" in done.stderr  # the progress bar
    entries: dict[str, dict[str, Any]] = {
        e["path"]: e for e in json.loads(out.read_text())["images"]
    }

    # One entry for every file, by its path relative to the folder, and nothing else.
    assert set(entries) == set(expected)
    for name, group in expected.items():
        e = entries[name]
        assert isinstance(e["cluster"], str) and e["cluster"]
        assert isinstance(e["reason"], str)
        if group:
            assert e["status"] == "ok", e
            assert 0 < e["quality"] <= 1
        else:
            assert e["status"] != "ok" and e["reason"], e
            assert e["quality"] is None
    assert entries["broken.jpg"]["status"] == "corrupt"
    assert entries["empty.png"]["status"] == "empty"
    assert entries["notes/readme.txt"]["status"] == "not_an_image"

    # The clusters are the groups: every edit with its original, nothing else together.
    clusters: dict[str, set[str]] = defaultdict(set)
    for name, e in entries.items():
        clusters[e["cluster"]].add(expected[name] or name)
    assert all(len(groups) == 1 for groups in clusters.values()), clusters
    for group in ("p0", "p1"):
        assert len({entries[n]["cluster"] for n, g in expected.items() if g == group}) == 1

    # Exactly one kept file per cluster; a duplicate names the kept one.
    kept: dict[str, list[str]] = defaultdict(list)
    for name, e in entries.items():
        if e["keep"]:
            kept[e["cluster"]].append(name)
        else:
            kept_copy = entries[e["duplicate_of_path"]]
            assert e["decision"] == "duplicate" and kept_copy["keep"]
            assert e["duplicate_of"] == kept_copy["image_id"]
    assert all(len(kept[c]) == 1 for c in clusters), kept

    # The gallery shows both clusters, names escaped; the folder is left as it was.
    page = (html / "index.html").read_text()
    assert len(gallery.embedded(page)["clusters"]) == 2
    assert "<i>copy</i>" not in page and "trip 1/<i>copy</i> & more.jpg" in gallery.names(page)
    assert "data:image/jpeg;base64," in page
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_scan_of_an_empty_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "scan", str(tmp_path / "empty"), "--json",
         str(tmp_path / "out.json"), "--quiet", "--milvus-uri", "http://127.0.0.1:19530",
         "--triton-url", "127.0.0.1:8001"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text())["images"] == []
    missing = subprocess.run(
        [sys.executable, "-m", "apps.cli", "scan", str(tmp_path / "nowhere")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "not a directory" in missing.stderr
