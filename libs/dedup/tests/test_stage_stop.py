"""A stop during start-up: the stage runtime exits at once, and keeps a SIGTERM that
arrives before the event loop's handler (no Kafka: its calls are stand-ins)."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from dedup.runtime import stage
from dedup.runtime.contract import Output, Stage
from dedup.runtime.stage import StageRunner
from dedup.tests.test_stage_outages import QuickSettings
from dedup.v1.events_pb2 import BlobEvent

LIBS = Path(__file__).resolve().parents[2]


async def never_called(event: BlobEvent) -> Sequence[Output]:
    raise AssertionError("no record without Kafka")


@pytest.mark.parametrize("hangs", [False, True], ids=["refused", "hangs"])
async def test_a_stop_while_kafka_is_awaited_at_start_up_ends_the_wait_at_once(
    monkeypatch: pytest.MonkeyPatch, hangs: bool
) -> None:
    calls = 0

    async def kafka_down(*_: object) -> None:
        nonlocal calls
        calls += 1
        if hangs:  # a broker that never answers: the call itself must be given up
            await asyncio.Event().wait()
        raise KafkaConnectionError("no broker at 127.0.0.1:1")

    monkeypatch.setattr(stage, "ensure_topics", kafka_down)
    settings = QuickSettings(retry_backoff_seconds=0.05, shutdown_timeout_seconds=30)
    runner = StageRunner(Stage("quick", BlobEvent, never_called), settings)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.3)
    assert calls >= 1 and not task.done()
    assert not runner.health.ready
    started = time.monotonic()
    runner.stop.set()
    await asyncio.wait_for(task, timeout=5)  # returns, without Abandoned or a traceback
    assert time.monotonic() - started < 1, "waited for the shutdown timeout"


async def test_a_stop_while_the_stage_opens_ends_the_opening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[asyncio.Event] = []
    monkeypatch.setattr(stage, "request_stop_on_signals", stops.append)
    opening, closed = asyncio.Event(), []

    @asynccontextmanager
    async def open_stage(settings: QuickSettings) -> AsyncIterator[Stage[BlobEvent]]:
        opening.set()
        try:
            await asyncio.Event().wait()  # a dependency retried inside, that never comes
            yield Stage("quick", BlobEvent, never_called)
        finally:
            closed.append(True)

    task = asyncio.create_task(stage.serve("quick", QuickSettings(), open_stage))
    await asyncio.wait_for(opening.wait(), timeout=5)
    stops[0].set()
    await asyncio.wait_for(task, timeout=2)
    assert closed == [True]  # its clients closed on the way out


# A service's `main` whose stage waits for a dependency that never comes, and a SIGTERM
# that arrives while `main` sets up, before `serve` installs the event loop's handler.
_EARLY_SIGTERM = textwrap.dedent(
    """
    import os, signal, sys
    from contextlib import asynccontextmanager
    from dedup.errors import TransientError
    from dedup.runtime import stage
    from dedup.tests.test_stage_outages import QuickSettings

    @asynccontextmanager
    async def open_stage(settings):
        raise TransientError("milvus unreachable", dependency="milvus")
        yield

    configure = stage.configure_logging
    def configure_then_sigterm(*args, **kwargs):
        configure(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
    stage.configure_logging = configure_then_sigterm
    stage.main("quick", QuickSettings(retry_backoff_seconds=0.05), open_stage)
    print("main returned", flush=True)
    """
)


def test_a_sigterm_before_the_event_loop_handler_stops_the_service_cleanly() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIBS), str(LIBS.parent)]))
    run = subprocess.run(
        [sys.executable, "-c", _EARLY_SIGTERM],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Without the early handler the signal kills it (-15), or, as PID 1 of a container,
    # is ignored and the service waits for its dependency until it is killed.
    assert run.returncode == 0, run.stderr[-2000:]
    assert "main returned" in run.stdout
    assert "SIGTERM arrived during start-up" in run.stderr + run.stdout
