"""The fault suite (`make faults`): a private stack for the whole session (its own run dir
and ports), every test marked `faults`, and the table of cases printed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import ROOT, PrivateStack

RUN_DIR = ROOT / ".run" / "faults"
TABLE: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def stack() -> Iterator[PrivateStack]:
    """The private stack: one already running from RUN_DIR is used and left running
    (while working on the suite); otherwise it is started here and removed afterwards."""
    private = PrivateStack.create(RUN_DIR / "stack")
    if private.running():
        yield private
        return
    private.script("down")  # what an interrupted earlier run left
    try:
        private.up()
        yield private
    finally:
        private.script("down", "--purge")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TABLE:
        terminalreporter.section("fault suite")
        for line in TABLE:
            terminalreporter.write_line(line)
        (RUN_DIR / "table.md").write_text("\n".join(TABLE) + "\n", encoding="utf-8")
