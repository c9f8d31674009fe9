"""The Event Hub path with the SDK's own EventData objects (there is no emulator here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.eventhub import EventData
from google.protobuf.message import Message

from dedup.events import BLOB_CREATED, BLOB_DELETED, EventFilter, image_id
from dedup.runtime.kafka import KafkaError
from dedup.v1.events_pb2 import BlobEvent, EventSchema
from services.ingest.eventhub import Forwarder, events_of

SOURCE = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/photos"


def storage_event(
    name: str, *, cloud: bool = False, kind: str = BLOB_CREATED, **data: Any
) -> dict[str, Any]:
    body = {
        "api": "PutBlob",
        "eTag": '"0x1"',
        "contentType": "image/jpeg",
        "contentLength": 1234,
        "blobType": "BlockBlob",
        "url": f"https://photos.blob.core.windows.net/uploads/{name}",
    } | data
    subject = f"/blobServices/default/containers/uploads/blobs/{name}"
    if cloud:
        return {
            "specversion": "1.0",
            "type": kind,
            "source": SOURCE,
            "id": f"ce-{name}",
            "time": "2026-11-18T15:13:39.4589254Z",
            "subject": subject.lstrip("/"),
            "data": body,
        }
    return {
        "topic": SOURCE,
        "subject": subject,
        "eventType": kind,
        "eventTime": "2026-11-18T15:13:39.4589254Z",
        "id": f"eg-{name}",
        "data": body,
        "dataVersion": "",
        "metadataVersion": "1",
    }


def message(body: Any) -> EventData:
    """An Event Hubs message as Event Grid sends it: the event(s) as a JSON body."""
    return EventData(body if isinstance(body, str) else json.dumps(body))


def test_event_grid_schema_from_event_data() -> None:
    (event,) = events_of(message([storage_event("a.jpg")]))
    assert event.schema == EventSchema.EVENT_SCHEMA_EVENT_GRID
    assert event.image_id == image_id("photos", "uploads", "a.jpg")
    assert (event.container, event.blob_name, event.data.e_tag) == ("uploads", "a.jpg", "0x1")


def test_cloud_events_schema_from_event_data() -> None:
    (event,) = events_of(message(storage_event("a.jpg", cloud=True)))
    assert event.schema == EventSchema.EVENT_SCHEMA_CLOUD_EVENTS
    assert event.image_id == image_id("photos", "uploads", "a.jpg")


def test_cloud_event_in_binary_mode_from_event_data() -> None:
    full = storage_event("b.jpg", cloud=True)
    data = message(full.pop("data"))
    data.properties = {f"cloudEvents:{k}": v for k, v in full.items()}
    (event,) = events_of(data)
    assert event.schema == EventSchema.EVENT_SCHEMA_CLOUD_EVENTS and event.blob_name == "b.jpg"


def test_event_data_with_a_data_body_of_bytes() -> None:
    data = EventData(json.dumps([storage_event("c.jpg")]).encode())
    data.properties = {"aeg-event-type": "Notification", "aeg-delivery-count": "0"}
    (event,) = events_of(data)
    assert event.blob_name == "c.jpg"


@dataclass
class FakePublisher:
    sent: list[tuple[str, str, Message | bytes, Sequence[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    acked: int = 0
    failures: int = 0

    async def publish(
        self,
        topic: str,
        key: str,
        message: Message | bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.sent.append((topic, key, message, headers))

    async def flush(self) -> None:
        if self.failures:
            self.failures -= 1
            self.sent.clear()
            raise KafkaError("broker down")
        self.acked = len(self.sent)


@dataclass
class FakeContext:
    publisher: FakePublisher
    partition_id: str = "0"
    checkpoints: list[Any] = field(default_factory=list)

    async def update_checkpoint(self, event: Any = None, **kwargs: Any) -> None:
        assert self.publisher.acked == len(self.publisher.sent)  # only after every ack
        self.checkpoints.append(event)


async def test_a_batch_is_published_keyed_by_image_id_then_checkpointed() -> None:
    publisher = FakePublisher()
    context = FakeContext(publisher)
    forwarder = Forwarder(publisher, "events", EventFilter(containers=frozenset({"uploads"})))
    batch = [
        message([storage_event("a.jpg")]),
        message(storage_event("b.jpg", cloud=True)),
        message([storage_event("a.jpg", kind=BLOB_DELETED)]),
        message([storage_event("x", kind="Microsoft.Storage.BlobTierChanged")]),
        message("{broken json"),
    ]
    await forwarder.on_batch(context, batch)

    published = [(t, k, m) for t, k, m, _ in publisher.sent if t == "events"]
    assert [
        (k, m.blob_name, m.event_type) for _, k, m in published if isinstance(m, BlobEvent)
    ] == [
        (image_id("photos", "uploads", "a.jpg"), "a.jpg", BLOB_CREATED),
        (image_id("photos", "uploads", "b.jpg"), "b.jpg", BLOB_CREATED),
        (image_id("photos", "uploads", "a.jpg"), "a.jpg", BLOB_DELETED),
    ]
    (dead,) = [(t, m, h) for t, _, m, h in publisher.sent if t == "events.dlq"]
    assert dead[1] == b"{broken json"
    assert dict(dead[2])["dedup-error-kind"] == b"parse"
    assert b"not JSON" in dict(dead[2])["dedup-error"]
    assert context.checkpoints == [batch[-1]]


async def test_filtered_events_are_not_published_but_are_checkpointed() -> None:
    publisher = FakePublisher()
    context = FakeContext(publisher)
    forwarder = Forwarder(publisher, "events", EventFilter(content_types=("image/*",)))
    batch = [message([storage_event("notes.txt", contentType="text/plain")])]
    await forwarder.on_batch(context, batch)
    assert publisher.sent == [] and context.checkpoints == [batch[0]]


async def test_kafka_down_holds_the_batch_until_it_is_acknowledged() -> None:
    publisher = FakePublisher(failures=2)
    context = FakeContext(publisher)
    forwarder = Forwarder(publisher, "events", EventFilter(), backoff=(0.001, 0.001))
    batch = [message([storage_event("a.jpg")])]
    await forwarder.on_batch(context, batch)
    assert len(publisher.sent) == 1 and context.checkpoints == [batch[0]]


async def test_an_empty_batch_does_nothing() -> None:
    publisher = FakePublisher()
    context = FakeContext(publisher)
    await Forwarder(publisher, "events", EventFilter()).on_batch(context, [])
    assert context.checkpoints == []


def test_the_consumer_needs_a_hub_and_a_checkpoint_store(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("azure.eventhub.extensions.checkpointstoreblobaio")
    from services.ingest.eventhub import consumer_client
    from services.ingest.settings import IngestSettings

    with pytest.raises(ValueError, match="EVENTHUB"):
        consumer_client(IngestSettings())
    monkeypatch.setenv(
        "DEDUP_INGEST_EVENTHUB_CONNECTION_STRING",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=hub",
    )
    with pytest.raises(ValueError, match="storage account"):
        consumer_client(IngestSettings())  # Azurite's short-hand is not enough
    monkeypatch.setenv("DEDUP_INGEST_BLOB_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    client = consumer_client(IngestSettings())
    assert client.eventhub_name == "hub"
