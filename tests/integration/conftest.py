"""Integration tests run against the real local stack (Kafka, Azurite, Milvus, Triton).

If the stack is already up (`make up`), the tests use it and leave it running;
otherwise they start it with `stack/up.sh` and stop it with `stack/down.sh` afterwards.
"""

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps import processes
from dedup.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


def _stack(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", f"stack/{command}.sh"], cwd=ROOT, text=True, capture_output=True, check=False
    )


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> Iterator[None]:
    if _stack("status").returncode == 0:
        yield
        return
    started = _stack("up")
    if started.returncode != 0:
        _stack("down")
        pytest.fail(f"the local stack did not start:\n{started.stdout}\n{started.stderr}")
    try:
        yield
    finally:
        _stack("down")


@pytest.fixture
def kafka() -> KafkaSettings:
    # The stack's own port variable: a private stack on other ports works too.
    port = os.environ.get("DEDUP_STACK_KAFKA_PORT", "9092")
    return KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{port}")


@pytest.fixture
def run_id() -> str:
    """A fresh suffix so that every test has its own topics and consumer groups."""
    return uuid.uuid4().hex[:10]


def start_module(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m module` from the repo root with extra environment, logging to `log`."""
    return processes.start_module(module, log, env, cwd=ROOT)
