"""Kafka wiring: the one module that imports aiokafka.

Client options from settings, topic creation, and a publisher for producers that are not
stages (ingest, tests, the demo).
"""

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
)
from aiokafka.helpers import create_ssl_context
from google.protobuf.message import Message

from dedup import topics
from dedup.logs import dependency_ok
from dedup.settings import KafkaSettings

log = logging.getLogger(__name__)

__all__ = [
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "KafkaError",
    "Outgoing",
    "Publisher",
    "Record",
    "client_options",
    "committed_offsets",
    "describe_topic_config",
    "end_offsets",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "partitions",
    "read_topic",
    "send_transaction",
    "stop_producer",
    "transactional_id",
]


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by consumers, producers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context()
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def topic_config(topic: str) -> dict[str, str]:
    """Per-topic configuration: decisions are compacted, everything else is a log."""
    return {"cleanup.policy": "compact"} if topic in topics.COMPACTED else {}


async def ensure_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Create the topics that are missing (idempotent; a no-op when creation is off)."""
    if not settings.kafka_create_topics:
        return
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication_factor,
                topic_configs=topic_config(name),
            )
            for name in sorted(set(names) - existing)
        ]
        if missing:
            # Another replica may create them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


def make_consumer(
    settings: KafkaSettings,
    topic: str,
    group_id: str,
    listener: ConsumerRebalanceListener | None = None,
) -> AIOKafkaConsumer:
    """A consumer that never commits on its own: the runtime commits after produce acks."""
    consumer = AIOKafkaConsumer(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        **client_options(settings),
    )
    consumer.subscribe([topic], listener=listener)
    return consumer


def make_producer(settings: KafkaSettings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica; with a transactional
    id, it sends in transactions (`send_transaction`)."""
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        transactional_id=transactional_id,
        transaction_timeout_ms=settings.kafka_transaction_timeout_ms,
        **client_options(settings),
    )


def transactional_id(name: str) -> str:
    """One per live process, kept by the producers that replace a broken one: a new
    producer with the id fences the old one, and Kafka aborts what the old one left open.
    In a pod, the host name is the pod's name."""
    return f"{name}.{socket.gethostname()}.{os.getpid()}"


@dataclass(frozen=True)
class Outgoing:
    """A serialised record ready to send."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


async def send_transaction(
    producer: AIOKafkaProducer,
    records: Sequence[Outgoing],
    offsets: dict[TopicPartition, int] | None = None,
    group_id: str = "",
) -> None:
    """Send `records`, and commit `offsets` for `group_id`, as one transaction: readers
    (read_committed) see all of it or, if anything fails, none of it. On failure the
    producer is left mid-transaction: replace it (a fresh one aborts what was open)."""
    await producer.begin_transaction()
    futures = [
        await producer.send(o.topic, o.value, key=o.key, headers=list(o.headers) or None)
        for o in records
    ]
    await asyncio.gather(*futures)
    if offsets:
        await producer.send_offsets_to_transaction(offsets, group_id)
    await producer.commit_transaction()


async def until_offsets_visible(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], poll_seconds: float = 0.01
) -> None:
    """Return once the group's committed offsets have reached `offsets`. A transaction's
    commit returns before Kafka writes its markers, and until then the group still reads
    the offsets before it (the OffsetFetch aiokafka speaks cannot ask for stable ones):
    the partitions' next owner would start there and publish those records again. So a
    stage waits for this before it gives partitions up."""
    pending = dict(offsets)
    while True:
        for tp, wanted in list(pending.items()):
            if (await consumer.committed(tp) or 0) >= wanted:
                del pending[tp]
        if not pending:
            return
        await asyncio.sleep(poll_seconds)


# The producer's idempotence state is broken (a broker restart while batches expired in
# flight): that producer never sends again, a fresh one (a new producer id) does.
BROKEN_PRODUCER = (OutOfOrderSequenceNumber, InvalidProducerEpoch, InvalidProducerIdMapping)
# A producer's stop flushes what it still holds, which it may be unable to send.
STOP_SECONDS = 10.0


async def stop_producer(producer: AIOKafkaProducer) -> None:
    """Stop `producer`, giving up after STOP_SECONDS (Kafka is away)."""
    with contextlib.suppress(KafkaError, TimeoutError):
        await asyncio.wait_for(producer.stop(), STOP_SECONDS)


@dataclass
class RenewableProducer:
    """A producer (a stage's, a Publisher's) replaced by a new one when it is `broken`:
    Kafka refused it for good, or a transaction of it failed."""

    settings: KafkaSettings
    make: Callable[[KafkaSettings], AIOKafkaProducer] = make_producer
    current: AIOKafkaProducer | None = None
    broken: bool = False

    async def get(self) -> AIOKafkaProducer:
        """The producer to send with: the current one, or a fresh one if it broke (the
        start may raise while Kafka is away; the next call tries again)."""
        if self.current is None or self.broken:
            if self.current is not None:
                await stop_producer(self.current)
                log.warning("starting a new kafka producer", extra={"dependency": "kafka"})
            self.current = None
            producer = self.make(self.settings)
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()  # its half-open connections
                raise
            self.current, self.broken = producer, False
        return self.current

    async def stop(self) -> None:
        if self.current is not None:
            await stop_producer(self.current)


class Publisher:
    """Publishes protobuf messages keyed by image id; `flush` waits for every ack.

    With a transactional id, what is published between two flushes is one transaction:
    if `publish` or `flush` raises, none of it is ever read (consumers read committed
    records only), so the caller publishes it all again from its saved state without
    making duplicates.
    """

    def __init__(self, settings: KafkaSettings, transactional_id: str | None = None) -> None:
        self._settings = settings
        self._transactional = transactional_id is not None
        self._producer = RenewableProducer(
            settings, functools.partial(make_producer, transactional_id=transactional_id)
        )
        self._pending: list[Any] = []
        self._in_transaction = False

    async def __aenter__(self) -> Self:
        await self._producer.get()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def ensure_topics(self, names: Sequence[str]) -> None:
        await ensure_topics(self._settings, names)

    async def publish(
        self,
        topic: str,
        key: str,
        message: Message | bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one message; it is sent in the background and acknowledged by `flush`."""
        value = message if isinstance(message, bytes) else message.SerializeToString()
        try:
            producer = await self._producer.get()
            if self._transactional and not self._in_transaction:
                await producer.begin_transaction()
                self._in_transaction = True
            future = await producer.send(
                topic, value, key=key.encode(), headers=list(headers) or None
            )
        except KafkaError as error:
            self._failed(error)
            raise
        self._pending.append(future)

    async def flush(self) -> None:
        """Wait until Kafka acknowledged everything published so far, and commit it when
        transactional (raises on failure)."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                await future
            if self._in_transaction:
                await (await self._producer.get()).commit_transaction()
                self._in_transaction = False
        except KafkaError as error:
            self._failed(error)
            raise
        if pending:
            dependency_ok("kafka")

    def _failed(self, error: KafkaError) -> None:
        """Forget what was published since the last flush (the caller publishes it again).
        A transactional producer is replaced: its successor aborts the open transaction."""
        self._pending, self._in_transaction = [], False
        self._producer.broken |= self._transactional or isinstance(error, BROKEN_PRODUCER)


@dataclass(frozen=True)
class Record:
    """A record read back from a topic (reports, tests, the demo)."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, bytes]


async def partitions(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of `topic` (none if it does not exist), asked of the broker.

    A consumer's metadata cache may not know a topic created a moment ago.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in description["partitions"]]


async def _stop_groupless(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer without a group. aiokafka's group-less coordinator fails with
    CancelledError if stopped before its background task first ran: let it run once."""
    await asyncio.sleep(0)
    await consumer.stop()


async def read_topic(
    settings: KafkaSettings, topic: str, *, idle_seconds: float = 2.0
) -> AsyncIterator[Record]:
    """Read `topic` from the beginning, without a consumer group, until it is idle.

    Stops once every partition has reached the end offset seen at the start and no new
    record came for `idle_seconds`; a topic that keeps growing is read until it pauses.
    """
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, isolation_level="read_committed", **client_options(settings)
    )
    try:
        # Inside: a start that fails (broker down) must still close the client, or each
        # retry leaks a consumer (and an "Unclosed AIOKafkaConsumer" error line).
        await consumer.start()
        tps = await partitions(settings, topic)
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_seconds * 1000), max_records=500)
            for part in batch.values():
                for r in part:
                    key = r.key.decode() if r.key else ""
                    headers = {k: v for k, v in (r.headers or ())}
                    yield Record(r.topic, r.partition, r.offset, key, r.value or b"", headers)
            if not batch:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= end[tp] for tp in tps):
                    return
    finally:
        await _stop_groupless(consumer)


async def committed_offsets(settings: KafkaSettings, group_id: str, topic: str) -> dict[int, int]:
    """The offsets `group_id` has committed on each partition of `topic` (-1: none yet)."""
    consumer = AIOKafkaConsumer(
        group_id=group_id, enable_auto_commit=False, **client_options(settings)
    )
    await consumer.start()
    try:
        result = {}
        for tp in await partitions(settings, topic):
            offset = await consumer.committed(tp)
            result[tp.partition] = -1 if offset is None else offset
        return result
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """The offset a reader of committed records reaches on each partition of `topic`."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, isolation_level="read_committed", **client_options(settings)
    )
    await consumer.start()
    try:
        tps = await partitions(settings, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await _stop_groupless(consumer)


async def describe_topic_config(settings: KafkaSettings, topic: str) -> dict[str, str]:
    """The broker's configuration of `topic` (for checks and `make status`)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = responses[0].resources[0][4]
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()
