"""What every `dedup` command shares on the terminal: help that shows each option's default,
names escaped for a terminal line, the version, and output paths checked before any work.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Every `dedup` command exits with 2 on a bad command line, as argparse does.
USAGE_ERROR = 2


class HelpFormatter(argparse.HelpFormatter):
    """`--help` with every option's default (as argparse.ArgumentDefaultsHelpFormatter,
    but a flag's is "off" and a missing value's "none"); a help text that tells its default
    itself (it has "(default") is left as it is. Descriptions and epilogs keep their
    paragraphs, and a paragraph with indented lines (a table, an example) stays as
    written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            if any(line[:1].isspace() for line in paragraph.splitlines()):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "(default" in text
            or action.default is argparse.SUPPRESS
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        return f"{text} (default: {default_text(action.default)})".lstrip()


def default_text(value: object) -> str:
    """A default as `--help` shows it ("%" escaped for argparse's formatting)."""
    if value is None:
        text = "none"
    elif isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, list | tuple):
        text = ",".join(map(str, value)) or "none"
    else:
        text = str(value)
    return text.replace("%", "%%")


def dedup_version() -> str:
    """The installed package's version (its metadata), "unknown" when not installed."""
    try:
        return version("dedup")
    except PackageNotFoundError:
        return "unknown"


def shown(name: str) -> str:
    """A name as a terminal line may show it: as it is when printable, else escaped (a
    newline or an escape sequence in a file or blob name must not forge or colour a line)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _cannot_write_in(directory: Path) -> str | None:
    """Why no file can be created in `directory` (tried: permissions, read-only mounts), or
    None. The probe is a nameless temporary file, gone when closed."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as error:
        return f"cannot write in {shown(str(directory))}: {error.strerror or error}"


def file_problem(option: str, path: Path) -> str | None:
    """Why `option`'s file `path` could not be written at the end of the work, or None:
    its folder must exist (it is not made), and the file be writable or creatable."""
    where = f"{option} {shown(str(path))}"
    if path.is_dir():
        return f"{where}: is a directory"
    folder = path.parent
    if not folder.exists():
        return f"{where}: the folder {shown(str(folder))} does not exist"
    if not folder.is_dir():
        return f"{where}: {shown(str(folder))} is not a folder"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{where}: is not writable"
    problem = _cannot_write_in(folder)
    return f"{where}: {problem}" if problem else None


def folder_problem(option: str, path: Path) -> str | None:
    """Why `option`'s folder `path` could not take files at the end, or None: it is made if
    missing, so it must be a folder or be creatable in an existing one."""
    where = f"{option} {shown(str(path))}"
    if path.exists():
        if not path.is_dir():
            return f"{where}: is not a folder"
        problem = _cannot_write_in(path)
    elif not path.parent.is_dir():
        return f"{where}: the folder {shown(str(path.parent))} does not exist"
    else:
        problem = _cannot_write_in(path.parent)
    return f"{where}: {problem}" if problem else None


def output_problems(
    files: Iterable[tuple[str, Path | None]], folders: Iterable[tuple[str, Path | None]] = ()
) -> list[str]:
    """Every problem of the outputs a command was given, (option, path or None) each, one
    line per problem: checked before any work, so that a bad path costs nothing."""
    problems: list[str] = []
    seen: dict[Path, str] = {}
    for option, path in files:
        if path is None:
            continue
        problem = file_problem(option, path)
        if problem:
            problems.append(problem)
        resolved = path.resolve()
        if resolved in seen:
            problems.append(f"{seen[resolved]} and {option} name the same file {shown(str(path))}")
        seen[resolved] = option
    for option, path in folders:
        if path is not None and (problem := folder_problem(option, path)):
            problems.append(problem)
    return problems
