"""Shared by every test: each starts with the logging a process starts with. A test that
configures logging as a command does (the root logger's handlers and level) leaves it as
it found it, and the dependency outages the log filter remembers are a test's own: no
handler or outage of one test shows in another's records."""

import logging
from collections.abc import Iterator

import pytest

from dedup import logs


@pytest.fixture(autouse=True)
def _logging_of_its_own(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "OUTAGES", logs.OutageFilter())
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
