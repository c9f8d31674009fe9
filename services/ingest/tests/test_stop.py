"""SIGTERM while ingest still waits for its dependencies ends it at once; once consuming,
the consumer finishes what it has in hand (no Event Hub, no Kafka: stand-ins)."""

import asyncio

import pytest

from dedup.health import Health
from services.ingest import eventhub as ingest
from services.ingest.settings import IngestSettings


@pytest.mark.parametrize("consuming", [False, True], ids=["starting", "consuming"])
async def test_a_stop_ends_ingest(monkeypatch: pytest.MonkeyPatch, consuming: bool) -> None:
    stops: list[asyncio.Event] = []
    monkeypatch.setattr(ingest, "request_stop_on_signals", stops.append)
    started, finished = asyncio.Event(), []

    async def consume(settings: IngestSettings, health: Health, stop: asyncio.Event) -> None:
        started.set()
        if consuming:
            health.ready = True
            await stop.wait()  # the consumer's own graceful stop
            finished.append("batch committed")
        else:
            await asyncio.Event().wait()  # blob storage that never answers

    monkeypatch.setattr(ingest, "consume", consume)
    task = asyncio.create_task(ingest.serve(IngestSettings(http_port=0)))
    await asyncio.wait_for(started.wait(), timeout=5)
    stops[0].set()
    await asyncio.wait_for(task, timeout=2)
    assert finished == (["batch committed"] if consuming else [])
