"""Unit tests of the stage runtime's pure parts (no Kafka)."""

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber
from google.protobuf.message import DecodeError

from dedup.errors import InvalidMessageError
from dedup.runtime.kafka import RenewableProducer
from dedup.runtime.stage import (
    Outgoing,
    Stage,
    StageRunner,
    backoff_seconds,
    dead_letter_record,
    next_offsets,
    parse_message,
)
from dedup.settings import KafkaSettings, RuntimeSettings
from dedup.v1.events_pb2 import BlobEvent


def record(offset: int, value: bytes = b"", partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t.in",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"img-1",
        value=value,
        checksum=None,
        serialized_key_size=5,
        serialized_value_size=len(value),
        headers=(),
    )


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(a, 0.5, 3.0) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_seconds(10_000, 0.5, 3.0) == 3.0


def test_parse_accepts_a_valid_message() -> None:
    event = BlobEvent(image_id="abc", blob_name="a.jpg")
    assert parse_message(BlobEvent, event.SerializeToString()) == event


@pytest.mark.parametrize("data", [b"", None])
def test_parse_refuses_empty_values(data: bytes | None) -> None:
    with pytest.raises(InvalidMessageError, match="empty"):
        parse_message(BlobEvent, data)


def test_parse_refuses_bytes_that_are_not_protobuf() -> None:
    with pytest.raises(DecodeError):
        parse_message(BlobEvent, b"\xff\xff\xff\xff")


def test_parse_refuses_a_message_without_image_id() -> None:
    with pytest.raises(InvalidMessageError, match="image_id"):
        parse_message(BlobEvent, BlobEvent(blob_name="a.jpg").SerializeToString())


def test_dead_letter_keeps_the_record_and_names_the_error() -> None:
    out = dead_letter_record(record(7, b"\xff"), "hasher", "parse", ValueError("bad"), 1)
    headers = dict(out.headers)
    assert (out.topic, out.key, out.value) == ("t.in.dlq", b"img-1", b"\xff")
    assert headers["dedup-error"] == b"ValueError: bad"
    assert headers["dedup-error-kind"] == b"parse"
    assert headers["dedup-stage"] == b"hasher"
    assert headers["dedup-source-offset"] == b"7"


def test_dead_letter_error_text_is_bounded() -> None:
    out = dead_letter_record(record(1), "s", "permanent", RuntimeError("x" * 10_000), 3)
    assert len(dict(out.headers)["dedup-error"]) <= 2000


def test_next_offsets_is_one_past_the_highest_per_partition() -> None:
    records = [record(5), record(3), record(9, partition=1), record(4)]
    assert next_offsets(records) == {TopicPartition("t.in", 0): 6, TopicPartition("t.in", 1): 10}


class FlakyProducer:
    """Acknowledges every record but fails the first send of those named in `fail_once`
    with `error`; `landed` is shared by the producers of one test."""

    def __init__(self, fail_once: set[bytes], landed: list[bytes], error: type[KafkaError]) -> None:
        self.fail_once, self.landed, self.error = fail_once, landed, error
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, **_: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.fail_once:
            self.fail_once.discard(value)
            future.set_exception(self.error())
        else:
            self.landed.append(value)
            future.set_result(None)
        return future


def runner_and_producers(
    fail_once: set[bytes], error: type[KafkaError]
) -> tuple[StageRunner[BlobEvent], RenewableProducer, list[FlakyProducer], list[bytes]]:
    settings = RuntimeSettings(
        input_topic="t.in", output_topic="t.out", http_port=0, retry_backoff_seconds=0.001
    )
    runner = StageRunner(Stage("test", BlobEvent, handle=lambda m: asyncio.sleep(0, [])), settings)
    made: list[FlakyProducer] = []
    landed: list[bytes] = []

    def make(_: KafkaSettings) -> FlakyProducer:
        made.append(FlakyProducer(fail_once, landed, error))
        return made[-1]

    return runner, RenewableProducer(settings, make), made, landed


BATCH = [Outgoing("t.out", b"k", v) for v in (b"a", b"b", b"c")]


async def test_produce_resends_only_the_records_not_acknowledged() -> None:
    runner, producer, made, landed = runner_and_producers({b"b"}, KafkaTimeoutError)
    await runner._produce(producer, BATCH)
    assert sorted(landed) == [b"a", b"b", b"c"]  # each once: "a" and "c" not resent
    assert len(made) == 1  # a timeout is no reason for a new producer


async def test_a_producer_kafka_refuses_for_good_is_replaced() -> None:
    runner, producer, made, landed = runner_and_producers({b"b"}, OutOfOrderSequenceNumber)
    await runner._produce(producer, BATCH)
    assert sorted(landed) == [b"a", b"b", b"c"]
    assert len(made) == 2 and made[0].stopped  # "b" went out through a fresh producer
