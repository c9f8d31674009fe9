"""`dedup scan` as a person meets it: the clusters listed (kept copy first, one line per
image with its reason, names escaped), the exit codes, output paths refused before any
work, files that are no image told apart; and one real scan of a tiny folder."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from apps.scan import cli, servers
from apps.scan.session import ScanOptions, ScanResult
from dedup import synthetic
from dedup.formats import UNIDENTIFIED, not_an_image
from dedup.report import model, text
from dedup.report.model import Row
from dedup.tests.helpers import SCHEMA, row
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus

EVIL = "copies/evil\x1b[31m\nname.jpg"


def found() -> list[Row]:
    return [
        row("k", "kept.jpg", cluster="c", reason="kept: the other copy is a downscale of it"),
        row(
            "d",
            EVIL,
            cluster="c",
            decision="duplicate",
            keep=False,
            duplicate_of="k",
            size_bytes=2000,
            width=320,
            height=240,
            reason="a downscale of the kept copy; matcher: 120 inliers",
        ),
        row("s", "scores only.jpg", cluster="c", decision="duplicate", keep=False,
            duplicate_of="k", scores={"pdq_distance": 4, "inlier_ratio": 0.5}),
        row("t", "third.jpg", cluster="c", decision="duplicate", keep=False,
            duplicate_of="k", reason="via s: a crop of it"),
        row("u", "u.jpg", cluster="u", decision="unique", similar=("v",)),
        row("v", "v.jpg", cluster="v", decision="unique", similar=("u",)),
        row("b", "broken.jpg", cluster="b", decision="unreadable", status="corrupt",
            reason="OSError: truncated"),
        row("n", "notes.txt", cluster="n", decision="unreadable", status=model.NOT_AN_IMAGE),
    ]  # fmt: skip


def test_the_listing_puts_the_kept_copy_first_then_each_duplicate() -> None:
    lines = text.listing(found())
    assert lines[:5] == [
        "cluster 1 of 1: 4 images, 2.0 KB to free",
        "  keep kept.jpg  (1x1, 1 B): kept: the other copy is a downscale of it",
        "  dup  copies/evil\\x1b[31m\\nname.jpg  (320x240, 2.0 KB): a downscale of the kept "
        "copy; matcher: 120 inliers",
        "  dup  scores only.jpg  (1x1, 1 B): pdq_distance 4, inlier_ratio 0.5",
        "  dup  third.jpg  (1x1, 1 B): via scores only.jpg: a crop of it",
    ]
    assert "similar, not merged (another shot of the scene): 1" in lines
    assert "  u.jpg  ~  v.jpg" in lines
    assert lines[lines.index("unreadable: 1") + 1] == "  broken.jpg  (corrupt): OSError: truncated"
    assert lines[lines.index("not images: 1") + 1] == "  notes.txt"
    assert not any(c in "".join(lines) for c in "\x1b\r")
    assert text.listing([row("u", "u.jpg", decision="unique")]) == []


HASHERS_WORDS = f"corrupt: {UNIDENTIFIED}"


@pytest.mark.parametrize(
    ("name", "status", "reason", "is_image"),
    [
        ("notes.txt", "corrupt", HASHERS_WORDS, False),
        ("archive.zip", "corrupt", HASHERS_WORDS, False),
        ("no-extension", "corrupt", HASHERS_WORDS, False),
        ("text.jpg", "corrupt", HASHERS_WORDS, True),  # named as a picture: a broken one
        ("Scan.TGA", "corrupt", HASHERS_WORDS, True),
        ("truncated.txt", "corrupt", "corrupt: OSError: Truncated File Read", True),
        ("doc.pdf", "unsupported", "unsupported: PDF is not a supported image format", True),
        ("empty.txt", "empty", "empty: zero bytes", True),
    ],
)
def test_a_file_is_no_image_when_neither_its_bytes_nor_its_name_are_an_images(
    name: str, status: str, reason: str, is_image: bool
) -> None:
    assert (not_an_image(name, status, reason) is None) == is_image


def test_report_rows_tell_files_that_are_no_image_apart() -> None:
    decision = Decision(
        image_id="n",
        kind=DecisionKind.DECISION_KIND_UNREADABLE,
        blob_name="notes.txt",
        status=ImageStatus.IMAGE_STATUS_CORRUPT,
        reason=HASHERS_WORDS,
    )
    r = model.row(decision)
    assert r.status == model.NOT_AN_IMAGE and r.reason.startswith("not an image (text/plain): ")
    assert model.totals([r]).not_images == 1 and model.totals([r]).unreadable == 0
    named = Decision()
    named.CopyFrom(decision)
    named.blob_name = "notes.jpg"
    assert model.row(named).status == "corrupt"


def result(rows: list[Row], failures: dict[str, str] | None = None) -> ScanResult:
    return ScanResult(Path("/photos"), rows, failures=failures or {}, seconds=0.5)


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[ScanResult]:
    """The scan's engine replaced by a result to return (put in the list); a call with
    the list empty fails the test."""
    results: list[ScanResult] = []

    async def fake(root: Path, options: ScanOptions, *args: object) -> ScanResult:
        assert results, "the scan ran"
        return results.pop()

    monkeypatch.setattr(cli, "run_scan", fake)
    monkeypatch.setattr(cli, "configure_cli_logging", lambda: None)
    return results


def test_duplicates_found_exit_1_and_are_listed(
    tmp_path: Path, scanned: list[ScanResult], capsys: pytest.CaptureFixture[str]
) -> None:
    scanned.append(result(found()))
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = cli.main([str(tmp_path), "--json", str(out_json), "--csv", str(out_csv)])
    assert code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "cluster 1 of 1: 4 images, 2.0 KB to free"
    assert out[-3:] == [
        f"JSON: {out_json}",
        f"CSV: {out_csv}",
        "8 images: 1 duplicate clusters, 3 duplicates, 2 unique, 1 unreadable, 1 not images; "
        "deleting the duplicates would free 2.0 KB (0.5 s)",
    ]
    document = json.loads(out_json.read_text())
    jsonschema.validate(document, SCHEMA)
    assert len(list(csv.DictReader(io.StringIO(out_csv.read_text(), newline="")))) == 8


def test_no_duplicates_exit_0_and_quiet_prints_the_totals_only(
    tmp_path: Path, scanned: list[ScanResult], capsys: pytest.CaptureFixture[str]
) -> None:
    alone = [r for r in found() if r.cluster != "c"]
    scanned.append(result(alone))
    assert cli.main([str(tmp_path), "--quiet"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("4 images: 0 duplicate clusters")


def test_a_stage_failure_exits_4(tmp_path: Path, scanned: list[ScanResult]) -> None:
    scanned.append(result(found(), failures={"d": "matcher failed: bug"}))
    assert cli.main([str(tmp_path), "--quiet"]) == 4


@pytest.mark.parametrize(
    "bad",
    [
        ["--json", "{tmp}/nowhere/r.json"],
        ["--csv", "{tmp}"],
        ["--html", "{tmp}/a/b"],
        ["--json", "{tmp}/same", "--csv", "{tmp}/same"],
        ["--workers", "0"],
    ],
)
def test_a_bad_output_path_is_refused_before_the_scan(
    tmp_path: Path,
    bad: list[str],
    scanned: list[ScanResult],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [a.format(tmp=tmp_path) for a in bad]
    assert cli.main([str(tmp_path), *args]) == 2  # `scanned` is empty
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("dedup scan: ")
    assert "Traceback" not in err


def test_a_missing_folder_is_a_usage_error(
    tmp_path: Path, scanned: list[ScanResult], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"dedup scan: {tmp_path}/nowhere is not a directory\n"


def test_an_output_that_cannot_be_written_after_all_exits_3_with_the_totals(
    tmp_path: Path,
    scanned: list[ScanResult],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "out").mkdir()
    scanned.append(result(found()))
    target = tmp_path / "out" / "r.json"
    original = cli.write_outputs

    def vanished(*args: Any) -> None:
        (tmp_path / "out").rmdir()  # gone while the scan ran
        original(*args)

    monkeypatch.setattr(cli, "write_outputs", vanished)
    assert cli.main([str(tmp_path), "--json", str(target), "--quiet"]) == cli.Exit.FAILED
    out, err = capsys.readouterr()
    assert err.startswith("dedup scan: cannot write the outputs: ") and "Traceback" not in err
    assert out.startswith("8 images: ")


def make_folder(root: Path) -> None:
    """Four images (one a copy of another, smaller) and a text file."""
    original = synthetic.photo(9501)
    (root / "trip").mkdir(parents=True)
    (root / "trip" / "original.jpg").write_bytes(synthetic.encode(original, quality=92))
    half = synthetic.EDITS["resize-half"](original)
    (root / "trip" / "small\x1b[7mcopy.jpg").write_bytes(synthetic.encode(half, quality=85))
    (root / "other.png").write_bytes(synthetic.encode(synthetic.photo(9502), "PNG"))
    (root / "third.jpg").write_bytes(synthetic.encode(synthetic.photo(9503)))
    (root / "readme.txt").write_text("not an image\n")


@pytest.mark.skipif(
    not (servers.REPO / ".venv-triton").exists(), reason="needs Triton (`make setup`)"
)
@pytest.mark.timeout(300)
def test_dedup_scan_of_a_tiny_folder_prints_its_cluster_and_exits_1(tmp_path: Path) -> None:
    folder, out = tmp_path / "photos", tmp_path / "scan.json"
    make_folder(folder)
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "scan", str(folder), "--json", str(out),
         "--workers", "1"],
        cwd=servers.REPO, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("cluster 1 of 1: 2 images, ")
    assert lines[1].startswith("  keep trip/original.jpg  (640x480, ")
    assert lines[2].startswith("  dup  trip/small\\x1b[7mcopy.jpg  (320x240, ")
    assert "of the kept copy" in lines[2]
    assert "not images: 1" in lines and "  readme.txt" in lines
    assert lines[-1].startswith("5 images: 1 duplicate clusters, 1 duplicates, 2 unique, ")
    assert "\x1b" not in done.stdout
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    by_path = {e["path"]: e for e in document["images"]}
    copy = by_path["trip/small\x1b[7mcopy.jpg"]
    assert copy["duplicate_of"] == by_path["trip/original.jpg"]["image_id"]
    assert copy["duplicate_of_path"] == "trip/original.jpg"
    assert by_path["readme.txt"]["status"] == model.NOT_AN_IMAGE


def test_every_exit_code_is_documented_in_the_help_and_the_readme() -> None:
    readme = (servers.REPO / "README.md").read_text(encoding="utf-8")
    for code in cli.Exit:
        assert f"\n  {code.value:<4} " in cli.EXIT_CODES, code
        assert f"\n| {code.value} | " in readme, code
    assert cli.EXIT_CODES in cli.parser().format_help()
