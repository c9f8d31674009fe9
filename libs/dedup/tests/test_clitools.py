"""What every command shares: escaped names, defaults in --help, output paths checked
before any work, the version."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from dedup.clitools import (
    HelpFormatter,
    dedup_version,
    file_problem,
    folder_problem,
    output_problems,
    shown,
)


def test_names_are_shown_escaped_where_they_could_forge_a_line() -> None:
    assert shown("2024/ünï <x>.jpg") == "2024/ünï <x>.jpg"
    assert shown("a\nskip b.jpg\x1b[31m") == "a\\nskip b.jpg\\x1b[31m"
    assert shown("right\u202eto left\r") == "right\\u202eto left\\r"


def test_help_shows_every_default_once() -> None:
    p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    p.add_argument("--n", type=int, default=3, help="how many")
    p.add_argument("--out", help="where")
    p.add_argument("--flag", action="store_true", help="a switch")
    p.add_argument("--share", default="50%", help="a share")
    p.add_argument("--own", help="told (default: the first one)")
    text = p.format_help()
    assert "how many (default: 3)" in text and "where (default: none)" in text
    assert "a switch (default: off)" in text and "a share (default: 50%)" in text
    assert "told (default: the first one)" in text and text.count("(default:") == 5


def test_descriptions_are_filled_and_tables_kept() -> None:
    long = "word " * 40
    p = argparse.ArgumentParser(
        prog="x",
        description=long,
        epilog="codes:\n  0  fine\n  1  found",
        formatter_class=HelpFormatter,
    )
    text = p.format_help()
    assert "codes:\n  0  fine\n  1  found" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_version_is_the_package_metadata() -> None:
    assert dedup_version()[0].isdigit()


def test_an_output_file_needs_an_existing_writable_folder(tmp_path: Path) -> None:
    assert file_problem("--json", tmp_path / "out.json") is None
    (tmp_path / "old.json").write_text("{}")
    assert file_problem("--json", tmp_path / "old.json") is None
    assert (tmp_path / "old.json").read_text() == "{}"  # checked, not touched
    missing = file_problem("--json", tmp_path / "nowhere" / "out.json")
    assert (
        missing
        == f"--json {tmp_path}/nowhere/out.json: the folder {tmp_path}/nowhere does not exist"
    )
    assert file_problem("--csv", tmp_path) == f"--csv {tmp_path}: is a directory"
    (tmp_path / "file").write_text("")
    assert "is not a folder" in str(file_problem("--json", tmp_path / "file" / "out.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "old.json"]  # no probe left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_an_output_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "cannot write in" in str(file_problem("--json", locked / "out.json"))
    assert "cannot write in" in str(folder_problem("--html", locked / "gallery"))


def test_an_output_folder_may_be_made_in_an_existing_one(tmp_path: Path) -> None:
    assert folder_problem("--html", tmp_path / "gallery") is None
    assert not (tmp_path / "gallery").exists()
    assert "does not exist" in str(folder_problem("--html", tmp_path / "a" / "b"))
    (tmp_path / "f").write_text("")
    assert folder_problem("--html", tmp_path / "f") == f"--html {tmp_path}/f: is not a folder"


def test_all_problems_at_once_and_one_file_for_two_outputs(tmp_path: Path) -> None:
    same = tmp_path / "out"
    problems = output_problems(
        [("--json", same), ("--csv", same), ("--x", None)], [("--html", tmp_path / "a" / "b")]
    )
    assert problems == [
        f"--json and --csv name the same file {same}",
        f"--html {tmp_path}/a/b: the folder {tmp_path}/a does not exist",
    ]


def test_a_control_character_in_an_output_path_is_escaped(tmp_path: Path) -> None:
    problem = file_problem("--json", tmp_path / "no\x1b[2Jwhere" / "x.json")
    assert problem is not None and "\x1b" not in problem and "\\x1b[2J" in problem
