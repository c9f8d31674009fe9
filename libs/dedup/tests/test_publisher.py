"""The transactional Publisher: what a failed flush published is never committed."""

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

from dedup.runtime import kafka
from dedup.runtime.kafka import Publisher
from dedup.settings import KafkaSettings


class FakeTransactionalProducer:
    """Sends into the open transaction; `fail` makes the next send's ack fail."""

    committed: list[bytes]
    made: list["FakeTransactionalProducer"]
    fail = False

    def __init__(self) -> None:
        self.open: list[bytes] | None = None
        self.stopped = False
        FakeTransactionalProducer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def begin_transaction(self) -> None:
        assert self.open is None
        self.open = []

    async def send(self, topic: str, value: bytes, **_: object) -> asyncio.Future[None]:
        assert self.open is not None, "sent outside a transaction"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open.append(value)  # on the broker, uncommitted
        if FakeTransactionalProducer.fail:
            FakeTransactionalProducer.fail = False
            future.set_exception(KafkaTimeoutError())
        else:
            future.set_result(None)
        return future

    async def commit_transaction(self) -> None:
        assert self.open is not None
        FakeTransactionalProducer.committed.extend(self.open)
        self.open = None


async def test_a_failed_flush_commits_nothing_and_the_next_goes_through_a_fresh_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeTransactionalProducer.committed, FakeTransactionalProducer.made = [], []
    monkeypatch.setattr(kafka, "make_producer", lambda *_, **__: FakeTransactionalProducer())
    publisher = Publisher(KafkaSettings(), transactional_id="ingest.test")
    await publisher.publish("t", "a", b"a")
    FakeTransactionalProducer.fail = True
    await publisher.publish("t", "b", b"b")
    with pytest.raises(KafkaTimeoutError):
        await publisher.flush()
    assert FakeTransactionalProducer.committed == []  # "a" landed, but was never committed
    await publisher.publish("t", "a", b"a")  # the caller redoes the page
    await publisher.publish("t", "b", b"b")
    await publisher.flush()
    assert FakeTransactionalProducer.committed == [b"a", b"b"]
    first, _fresh = FakeTransactionalProducer.made
    assert first.stopped and first.open == [b"a", b"b"]  # left to its successor to abort
