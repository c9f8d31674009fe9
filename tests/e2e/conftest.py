"""End-to-end tests run against the real local stack, as the integration tests do: the
stack fixture (reuse a running stack, else start and stop it) and the helpers come from
tests/integration/conftest.py; every test here is marked `integration`."""

from pathlib import Path

import pytest

from tests.integration.conftest import kafka, local_stack, run_id  # noqa: F401 (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)
