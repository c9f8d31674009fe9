"""Shared by every test: a test that configures logging as a command does (the root
logger's handlers and level) leaves it as it found it, so that no handler of one test's
command filters another test's records."""

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
