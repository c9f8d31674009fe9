"""Unit tests of the stage runtime's pure parts (no Kafka)."""

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber
from google.protobuf.message import DecodeError

from dedup.errors import InvalidMessageError
from dedup.runtime.contract import Output, Stage, backoff_seconds
from dedup.runtime.kafka import Outgoing, RenewableProducer
from dedup.runtime.stage import (
    Ledger,
    StageRunner,
    dead_letter_record,
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


def test_the_ledger_commits_each_partitions_handled_prefix_only() -> None:
    ledger = Ledger()
    p0, p1 = TopicPartition("t.in", 0), TopicPartition("t.in", 1)
    first, second, third = (ledger.add(p0, offset) for offset in (3, 4, 5))
    other = ledger.add(p1, 9)
    for slot in (first, second, third, other):
        ledger.start(slot)
    ledger.finish(third, [Outgoing("t.out", b"c", b"5")])
    assert ledger.take_ready() == ([], {}, 0)  # 5 is done, but 3 and 4 are not
    ledger.finish(first, [Outgoing("t.out", b"a", b"3")])
    ledger.finish(other, [])
    assert ledger.take_ready() == ([Outgoing("t.out", b"a", b"3")], {p0: 4, p1: 10}, 2)
    ledger.finish(second, [Outgoing("t.out", b"b", b"4"), Outgoing("t.in.dlq", b"b", b"x")])
    outgoing, offsets, taken = ledger.take_ready()
    assert [o.value for o in outgoing] == [b"5", b"4", b"x"]  # in the order they finished
    assert (offsets, taken) == ({p0: 6}, 2)
    assert ledger.in_hand == 4  # until committed
    ledger.committed(4)
    assert ledger.in_hand == 0 and ledger.take_ready() == ([], {}, 0)


def test_outputs_of_several_partitions_go_out_in_the_order_their_handlers_finished() -> None:
    # The ranker: a later group re-decides an image an earlier one decided; the later
    # decision must be the one that lands last, whichever partitions the groups came from.
    ledger = Ledger()
    early = ledger.add(TopicPartition("t.in", 3), 0)
    late = ledger.add(TopicPartition("t.in", 0), 0)
    ledger.start(early)
    ledger.start(late)
    ledger.finish(early, [Outgoing("t.out", b"img", b"kept")])
    ledger.finish(late, [Outgoing("t.out", b"img", b"duplicate")])
    outgoing, _, _ = ledger.take_ready()
    assert [o.value for o in outgoing] == [b"kept", b"duplicate"]


def test_a_rebalance_gives_back_only_each_partitions_tail_of_unstarted_records() -> None:
    ledger = Ledger()
    p0, p1 = TopicPartition("t.in", 0), TopicPartition("t.in", 1)
    a, b, c, d = (ledger.add(p0, offset) for offset in (1, 2, 3, 4))
    e = ledger.add(p1, 7)
    ledger.start(a)  # b waits behind a, d behind c; e never started
    ledger.start(c)
    assert ledger.give_back() == 2  # d and e: b is not a tail (c after it was started)
    assert (d.given_back, e.given_back, b.given_back) == (True, True, False)
    assert ledger.in_hand == 3
    ledger.start(b)
    assert ledger.busy == 3
    for slot in (a, b, c):
        ledger.finish(slot, [])
    assert ledger.busy == 0
    assert ledger.take_ready() == ([], {p0: 4}, 3)  # offset 4 is fetched again


class FlakyTransactionalProducer:
    """Fails its transaction at `fail_at` ("send" or "commit") if `failures` is not empty
    (one failure each); `committed` is what the transactions that committed hold, shared
    by the producers of one test."""

    def __init__(self, fail_at: str, failures: list[type[KafkaError]], committed: list[object]):
        self.fail_at, self.failures, self.committed = fail_at, failures, committed
        self.open: list[object] = []
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def begin_transaction(self) -> None:
        assert not self.open, "a transaction is already open"

    async def send(self, topic: str, value: bytes, **_: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_at == "send" and self.failures and value == b"b":
            future.set_exception(self.failures.pop()())
        else:
            future.set_result(None)
        self.open.append(value)
        return future

    async def send_offsets_to_transaction(self, offsets: object, group_id: str) -> None:
        self.open.append((group_id, offsets))

    async def commit_transaction(self) -> None:
        if self.fail_at == "commit" and self.failures:
            raise self.failures.pop()()
        self.committed.extend(self.open)
        self.open = []


Fakes = list[FlakyTransactionalProducer]


def runner_and_producers(
    fail_at: str, error: type[KafkaError]
) -> tuple[StageRunner[BlobEvent], RenewableProducer, Fakes, list[object]]:
    settings = RuntimeSettings(
        input_topic="t.in", output_topic="t.out", http_port=0, retry_backoff_seconds=0.001
    )
    runner = StageRunner(Stage("test", BlobEvent, handle=lambda m: asyncio.sleep(0, [])), settings)
    made: Fakes = []
    committed: list[object] = []
    failures = [error]

    def make(_: KafkaSettings) -> FlakyTransactionalProducer:
        made.append(FlakyTransactionalProducer(fail_at, failures, committed))
        return made[-1]

    return runner, RenewableProducer(settings, make), made, committed


BATCH = [Outgoing("t.out", b"k", v) for v in (b"a", b"b", b"c")]
OFFSETS = {TopicPartition("t.in", 0): 8}


@pytest.mark.parametrize(
    ("fail_at", "error"), [("send", KafkaTimeoutError), ("commit", OutOfOrderSequenceNumber)]
)
async def test_a_failed_transaction_is_retried_whole_through_a_fresh_producer(
    fail_at: str, error: type[KafkaError]
) -> None:
    runner, producer, made, committed = runner_and_producers(fail_at, error)
    await runner._publish(producer, BATCH, OFFSETS)
    # Once each, records and offsets together: the failed attempt committed nothing.
    assert committed == [b"a", b"b", b"c", ("test", OFFSETS)]
    # Its producer was dropped: the fresh one's start aborts what it left open.
    assert len(made) == 2 and made[0].stopped and made[0].open


class OneBatchConsumer:
    """Hands out one batch, then nothing: the second fetch asks the runner to stop. The
    group reads the offsets the producer's transactions committed."""

    def __init__(
        self,
        records: list[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
        committed: list[object],
    ):
        self.batches, self.stop_event, self.transactions = [records], stop, committed
        self.offsets_read: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if not self.batches:
            self.stop_event.set()
            await asyncio.sleep(0)
            return {}
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for r in self.batches.pop():
            batch.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return batch

    def assignment(self) -> set[TopicPartition]:
        return set()

    async def committed(self, tp: TopicPartition) -> int | None:
        offsets = [o[1][tp] for o in self.transactions if isinstance(o, tuple) and tp in o[1]]
        self.offsets_read[tp] = max(offsets, default=0)
        return self.offsets_read[tp] or None


def running_stage(
    monkeypatch: pytest.MonkeyPatch, records: list[ConsumerRecord[bytes, bytes]]
) -> tuple[StageRunner[BlobEvent], list[object], OneBatchConsumer]:
    """A runner over `records` with Kafka replaced by stand-ins: what it commits."""
    from dedup.runtime import stage as runtime

    async def handle(event: BlobEvent) -> list[Output]:
        return [Output(event.image_id, event)]

    settings = RuntimeSettings(
        input_topic="t.in", output_topic="t.out", http_port=0, commit_linger_seconds=0
    )
    stop = asyncio.Event()
    runner = StageRunner(Stage("test", BlobEvent, handle), settings, stop)
    committed: list[object] = []

    async def no_topics(*_: object) -> None:
        return None

    monkeypatch.setattr(runtime, "ensure_topics", no_topics)
    consumer = OneBatchConsumer(records, stop, committed)
    monkeypatch.setattr(runtime, "make_consumer", lambda *_: consumer)
    monkeypatch.setattr(
        runtime,
        "make_producer",
        lambda *_, **__: FlakyTransactionalProducer("none", [], committed),
    )
    return runner, committed, consumer


def event(image_id: str) -> bytes:
    return BlobEvent(image_id=image_id, blob_name=f"{image_id}.jpg").SerializeToString()


async def test_the_runner_commits_every_record_it_fetched_with_its_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [record(0, event("a")), record(1, event("b")), record(5, event("c"), partition=1)]
    runner, committed, consumer = running_stage(monkeypatch, records)
    await runner.run()
    outputs = [BlobEvent.FromString(v).image_id for v in committed if isinstance(v, bytes)]
    offsets: dict[TopicPartition, int] = {}
    for item in committed:
        if isinstance(item, tuple):
            offsets |= item[1]
    assert sorted(outputs) == ["a", "b", "c"]
    assert offsets == {TopicPartition("t.in", 0): 2, TopicPartition("t.in", 1): 6}
    # Before it left the group, it saw the group read them (their next owner starts there).
    assert consumer.offsets_read == offsets


async def test_a_failure_of_the_runner_itself_is_raised_as_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner, committed, _ = running_stage(monkeypatch, [record(0, event("a"))])

    async def broken(_: ConsumerRecord[bytes, bytes]) -> list[Outgoing]:
        raise RuntimeError("a bug in the runtime")

    monkeypatch.setattr(runner, "_process", broken)
    with pytest.raises(RuntimeError, match="a bug in the runtime"):
        await runner.run()
    assert committed == []
