"""Event Hub -> Kafka: Event Grid storage events become BlobEvents on dedup.blob-events.v1.

Each batch of a partition is translated, filtered and published; the partition's
checkpoint (in blob storage) moves past the batch only after Kafka acknowledged every
event of it, so a crash means redelivery, never loss. A Kafka outage holds the batch
(retried with backoff) instead of moving on. An event that cannot be understood goes to
the dead-letter topic with the error in its headers, like a stage's unparseable message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from google.protobuf.message import Message

from dedup import metrics, topics
from dedup.blob import AZURITE, BlobStore, open_service
from dedup.errors import TransientError
from dedup.events import EventFilter, InvalidEventError, from_message
from dedup.health import Health, serve_health
from dedup.logs import configure_logging, dependency_of_error, dependency_ok
from dedup.runtime.contract import backoff_seconds
from dedup.runtime.kafka import KafkaError
from dedup.runtime.signals import keep_early_signals
from dedup.runtime.stage import request_stop_on_signals
from dedup.settings import load_settings
from dedup.v1.events_pb2 import BlobEvent
from services.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from azure.eventhub import EventData
    from azure.eventhub.aio import EventHubConsumerClient


log = logging.getLogger("dedup.ingest")

SERVICE = "ingest"
SOURCE = "eventhub"


class ConfigError(ValueError):
    """The consumer's settings are incomplete."""


class Publisher(Protocol):
    async def publish(
        self,
        topic: str,
        key: str,
        message: Message | bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...

    async def flush(self) -> None: ...


class PartitionContext(Protocol):
    @property
    def partition_id(self) -> str: ...

    async def update_checkpoint(self, event: Any = None, **kwargs: Any) -> None: ...


def events_of(message: EventData) -> list[BlobEvent]:
    """The blob events in one Event Hubs message (raises InvalidEventError)."""
    return from_message(message.body_as_str(encoding="utf-8"), message.properties)


def dead_letter_headers(
    message: EventData, partition: str, error: Exception
) -> list[tuple[str, bytes]]:
    return [
        ("dedup-error", f"{type(error).__name__}: {error}"[:2000].encode()),
        ("dedup-error-kind", b"parse"),
        ("dedup-stage", SERVICE.encode()),
        ("dedup-source", f"eventhub partition {partition}".encode()),
        ("dedup-source-offset", str(message.offset).encode()),
        ("dedup-source-sequence", str(message.sequence_number).encode()),
    ]


class Forwarder:
    """The consumer's batch callback: translate, filter, publish, wait for acks, checkpoint."""

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        event_filter: EventFilter,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        stop: asyncio.Event | None = None,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._filter = event_filter
        self._backoff = backoff
        self._stop = stop or asyncio.Event()

    async def on_batch(self, context: PartitionContext, messages: list[EventData]) -> None:
        if not messages:
            return
        attempt = 0
        while True:
            try:
                await self._forward(context.partition_id, messages)
                break
            except (KafkaError, TransientError, ConnectionError, TimeoutError) as error:
                # Never move the checkpoint past a batch Kafka did not take: wait it out.
                if self._stop.is_set():
                    raise
                attempt += 1
                metrics.RETRIES.labels(SERVICE).inc()
                log.warning(
                    "publish failed, will retry the batch: %s",
                    error,
                    extra={"dependency": dependency_of_error(error)},
                )
                await asyncio.sleep(backoff_seconds(attempt, *self._backoff))
        await context.update_checkpoint(messages[-1])
        dependency_ok("eventhub")  # a batch came and its checkpoint was stored

    async def _forward(self, partition: str, messages: list[EventData]) -> None:
        outcomes = {"published": 0, "filtered": 0, "invalid": 0}
        for message in messages:
            try:
                events = events_of(message)
            except InvalidEventError as error:
                log.warning("invalid storage event to DLQ: %s", error)
                await self._publisher.publish(
                    topics.dead_letter(self._topic),
                    str(message.sequence_number),
                    message.body_as_str(encoding="utf-8").encode(),
                    dead_letter_headers(message, partition, error),
                )
                outcomes["invalid"] += 1
                continue
            if not events:
                outcomes["filtered"] += 1  # another event type (SubscriptionValidation, ...)
            for event in events:
                if self._filter.accepts(event):
                    await self._publisher.publish(self._topic, event.image_id, event)
                    outcomes["published"] += 1
                else:
                    outcomes["filtered"] += 1
        await self._publisher.flush()
        for outcome, count in outcomes.items():
            if count:
                metrics.INGEST_EVENTS.labels(SERVICE, SOURCE, outcome).inc(count)


def consumer_client(settings: IngestSettings) -> EventHubConsumerClient:
    """The Event Hub consumer with its blob checkpoint store (imported here: only the
    consumer needs the checkpoint-store package)."""
    from azure.eventhub.aio import EventHubConsumerClient
    from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
    from azure.identity.aio import DefaultAzureCredential

    if settings.eventhub_connection_string is None and not settings.eventhub_namespace:
        raise ConfigError(
            "set DEDUP_INGEST_EVENTHUB_CONNECTION_STRING or DEDUP_INGEST_EVENTHUB_NAMESPACE"
        )
    connection = settings.blob_connection_string
    if connection is not None and connection.get_secret_value() != AZURITE:
        store = BlobCheckpointStore.from_connection_string(
            connection.get_secret_value(), settings.checkpoint_container
        )
    elif settings.blob_account_url:
        store = BlobCheckpointStore(
            settings.blob_account_url,
            settings.checkpoint_container,
            credential=DefaultAzureCredential(),
        )
    else:
        # (The checkpoint store's own client does not read Azurite's short-hand.)
        raise ConfigError(
            "checkpoints need a storage account: DEDUP_INGEST_BLOB_CONNECTION_STRING"
            " (a full connection string) or DEDUP_INGEST_BLOB_ACCOUNT_URL"
        )
    if settings.eventhub_connection_string is not None:
        return EventHubConsumerClient.from_connection_string(
            settings.eventhub_connection_string.get_secret_value(),
            settings.eventhub_consumer_group,
            eventhub_name=settings.eventhub_name or None,
            checkpoint_store=store,
        )
    return EventHubConsumerClient(
        settings.eventhub_namespace or "",
        settings.eventhub_name,
        settings.eventhub_consumer_group,
        DefaultAzureCredential(),
        checkpoint_store=store,
    )


async def consume(settings: IngestSettings, health: Health, stop: asyncio.Event) -> None:
    """Run the consumer until `stop` is set."""
    from dedup.runtime.kafka import Publisher as KafkaPublisher
    from dedup.runtime.kafka import transactional_id

    client = consumer_client(settings)
    async with open_service(settings) as service:
        # The checkpoint store expects its container to exist.
        await BlobStore(service, SERVICE).ensure_container(settings.checkpoint_container)
    async with KafkaPublisher(settings, transactional_id(SERVICE)) as publisher:
        await publisher.ensure_topics(
            [settings.output_topic, topics.dead_letter(settings.output_topic)]
        )
        forwarder = Forwarder(
            publisher,
            settings.output_topic,
            settings.event_filter(),
            backoff=(settings.retry_backoff_seconds, settings.retry_backoff_max_seconds),
            stop=stop,
        )

        async def ready(context: PartitionContext) -> None:
            health.ready, health.detail = True, "consuming"
            log.info("consuming partition %s", context.partition_id)

        async def on_error(context: PartitionContext | None, error: Exception) -> None:
            where = context.partition_id if context is not None else "-"
            log.warning(
                "event hub error on partition %s: %s",
                where,
                error,
                extra={"dependency": "eventhub"},
            )

        async with client:
            receiving = asyncio.create_task(
                client.receive_batch(
                    forwarder.on_batch,
                    max_batch_size=settings.batch_size,
                    max_wait_time=settings.max_wait_seconds,
                    starting_position="-1",  # without a checkpoint: from the beginning
                    on_partition_initialize=ready,
                    on_error=on_error,
                )
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            health.ready, health.detail = False, "stopping"
            stopping.cancel()
            await client.close()
            await asyncio.gather(receiving, return_exceptions=True)


async def serve(settings: IngestSettings) -> None:
    """Consume until SIGTERM, with the probes and metrics of every service."""
    health = Health()
    stop = asyncio.Event()
    request_stop_on_signals(stop)
    http = await serve_health(health, settings.http_host, settings.http_port)
    consuming = asyncio.create_task(consume(settings, health, stop))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not consuming.done() and not health.ready:
            # A stop while it still waits for blob storage or Kafka: nothing to finish.
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
            log.info("stopped before start-up finished")
        else:
            await consuming  # consume() finishes the batch in hand
    finally:
        stopped.cancel()
        await http.cleanup()


def main() -> None:
    """`python -m services.ingest` and `dedup ingest eventhub`."""
    keep_early_signals()
    settings = load_settings(IngestSettings)
    configure_logging(SERVICE, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as error:
        print(f"ingest: {error}", file=sys.stderr)
        sys.exit(2)
