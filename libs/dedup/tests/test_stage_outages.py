"""The stage runtime names the dependency of its retry warnings and reports when it is back."""

import logging
from collections.abc import Iterator, Sequence

import pytest

from dedup import logs
from dedup.errors import TransientError
from dedup.logs import OutageFilter
from dedup.runtime.contract import Output, Stage
from dedup.runtime.stage import StageRunner
from dedup.settings import KafkaTopic, RuntimeSettings, service_config
from dedup.tests.test_stage_parts import record
from dedup.v1.events_pb2 import BlobEvent


class QuickSettings(RuntimeSettings):
    model_config = service_config("quick")
    input_topic: KafkaTopic = "t.in"
    output_topic: KafkaTopic = "t.out"
    http_port: int = 0
    retry_backoff_seconds: float = 0.001


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def outages(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OutageFilter, Lines]]:
    """A fresh filter where the runtime reports to it, on a handler of the root logger."""
    outages = OutageFilter()
    monkeypatch.setattr(logs, "OUTAGES", outages)
    lines = Lines()
    lines.addFilter(outages)
    logging.getLogger().addHandler(lines)
    try:
        yield outages, lines
    finally:
        logging.getLogger().removeHandler(lines)


async def test_a_dependency_is_down_from_the_first_retry_until_the_handler_succeeds(
    outages: tuple[OutageFilter, Lines],
) -> None:
    outages_, lines = outages
    seen: list[list[str]] = []

    async def handle(event: BlobEvent) -> Sequence[Output]:
        seen.append(outages_.down())
        if len(seen) < 6:
            raise TransientError("blob storage unreachable", dependency="blob")
        return [Output(event.image_id, event)]

    runner = StageRunner(Stage("quick", BlobEvent, handle), QuickSettings())
    (out,) = await runner._process(record(1, BlobEvent(image_id="img-1").SerializeToString()))
    assert out.topic == "t.out"
    assert seen == [[], ["blob"], ["blob"], ["blob"], ["blob"], ["blob"]]
    assert outages_.down() == []
    texts = [r.getMessage() for r in lines.records]
    assert len(texts) == 2, texts  # five retry warnings: the start line and the end line
    assert texts[0] == "blob: unavailable: transient failure, will retry: blob storage unreachable"
    assert texts[1].startswith("blob: reachable again after ")
    assert texts[1].endswith(", 4 errors suppressed")


async def test_a_topic_read_that_cannot_start_closes_its_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dedup.runtime import kafka

    stopped: list[bool] = []

    class DownConsumer:
        def __init__(self, **options: object) -> None:
            pass

        async def start(self) -> None:
            raise ConnectionError("broker down")

        async def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(kafka, "AIOKafkaConsumer", DownConsumer)
    with pytest.raises(ConnectionError):
        async for _ in kafka.read_topic(QuickSettings(), "t.in"):
            pass
    assert stopped == [True]  # a retry loop around it leaks nothing
