"""Event Grid storage events (both schemas) -> BlobEvent, filters and the image id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dedup.blob import BlobInfo
from dedup.events import (
    BLOB_CREATED,
    BLOB_DELETED,
    EventFilter,
    InvalidEventError,
    created_from_listing,
    from_event_dict,
    from_json_body,
    from_message,
    image_id,
)
from dedup.v1.events_pb2 import BlobEvent, EventSchema

SOURCE = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/photos"
SUBJECT = "/blobServices/default/containers/uploads/blobs/2026/a cat.jpg"
URL = "https://photos.blob.core.windows.net/uploads/2026/a%20cat.jpg"


def data(**extra: Any) -> dict[str, Any]:
    # As Azure documents it for BlobCreated (note the quoted ETag).
    return {
        "api": "PutBlockList",
        "clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
        "requestId": "831e1650-001e-001b-66ab-eeb76e000000",
        "eTag": '"0x8D4BCC2E4835CD0"',
        "contentType": "image/jpeg",
        "contentLength": 524288,
        "blobType": "BlockBlob",
        "url": URL,
        "sequencer": "00000000000004420000000000028963",
        "storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"},
    } | extra


def event_grid(event_type: str = BLOB_CREATED, **fields: Any) -> dict[str, Any]:
    return {
        "topic": SOURCE,
        "subject": SUBJECT,
        "eventType": event_type,
        "eventTime": "2026-06-26T18:41:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": data(),
        "dataVersion": "",
        "metadataVersion": "1",
    } | fields


def cloud_event(event_type: str = BLOB_CREATED, **fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": SOURCE,
        "id": "9aeb0fdf-c01e-0131-0922-9eb54906e209",
        "time": "2026-11-18T15:13:39.4589254Z",
        "subject": SUBJECT.lstrip("/"),  # CloudEvents subjects come without the slash
        "data": data(),
    } | fields


def check_created(event: BlobEvent | None, schema: int) -> None:
    assert event is not None
    assert (event.account, event.container, event.blob_name) == (
        "photos",
        "uploads",
        "2026/a cat.jpg",
    )
    assert event.image_id == image_id("photos", "uploads", "2026/a cat.jpg")
    assert event.event_type == BLOB_CREATED and event.schema == schema
    assert event.topic == SOURCE
    assert event.data.e_tag == "0x8D4BCC2E4835CD0"
    assert (event.data.content_type, event.data.content_length) == ("image/jpeg", 524288)
    assert (event.data.api, event.data.blob_type, event.data.url) == (
        "PutBlockList",
        "BlockBlob",
        URL,
    )
    assert event.data.sequencer == "00000000000004420000000000028963"
    assert event.event_time.seconds > 0 and event.event_time.nanos > 0


def test_event_grid_schema() -> None:
    event = from_event_dict(event_grid())
    check_created(event, EventSchema.EVENT_SCHEMA_EVENT_GRID)
    assert event is not None and event.id == "831e1650-001e-001b-66ab-eeb76e069631"
    assert event.event_time.ToJsonString() == "2026-06-26T18:41:00.958410300Z"


def test_cloud_events_schema() -> None:
    event = from_event_dict(cloud_event())
    check_created(event, EventSchema.EVENT_SCHEMA_CLOUD_EVENTS)
    assert event is not None and event.data_version == "1.0"


def test_a_body_holds_one_event_or_an_array() -> None:
    one = from_json_body(json.dumps(cloud_event()))
    many = from_json_body(json.dumps([event_grid(), event_grid(id="2")]).encode())
    assert len(one) == 1 and [e.id for e in many] == ["831e1650-001e-001b-66ab-eeb76e069631", "2"]


def test_cloud_event_in_binary_content_mode() -> None:
    attributes = {k: v for k, v in cloud_event().items() if k != "data"}
    properties = {f"cloudEvents:{k}".encode(): str(v).encode() for k, v in attributes.items()}
    (event,) = from_message(json.dumps(data()).encode(), properties)
    check_created(event, EventSchema.EVENT_SCHEMA_CLOUD_EVENTS)


def test_deleted_events_translate_too() -> None:
    deleted = event_grid(
        BLOB_DELETED, data={"api": "DeleteBlob", "url": URL, "contentType": "image/jpeg"}
    )
    event = from_event_dict(deleted)
    assert event is not None and event.event_type == BLOB_DELETED
    assert event.image_id == image_id("photos", "uploads", "2026/a cat.jpg")
    assert event.data.content_length == 0


def test_other_event_types_are_not_blob_events() -> None:
    assert from_event_dict(event_grid("Microsoft.Storage.BlobTierChanged")) is None
    validation = event_grid(
        "Microsoft.EventGrid.SubscriptionValidationEvent", data={"validationCode": "x"}
    )
    assert from_json_body(json.dumps([validation])) == []


def test_identity_falls_back_to_the_url() -> None:
    event = from_event_dict(event_grid(topic="", subject=""))
    assert event is not None
    assert (event.account, event.container, event.blob_name) == (
        "photos",
        "uploads",
        "2026/a cat.jpg",
    )
    azurite = "http://127.0.0.1:10000/devstoreaccount1/uploads/x%2By.png"
    event = from_event_dict(event_grid(topic="", subject="", data=data(url=azurite)))
    assert event is not None
    assert (event.account, event.container, event.blob_name) == (
        "devstoreaccount1",
        "uploads",
        "x+y.png",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps([1, 2]),
        json.dumps({"hello": "world"}),
        json.dumps(event_grid(data="nope")),
        json.dumps(event_grid(subject="", data=data(url=""))),
        json.dumps(event_grid(eventTime="yesterday")),
        json.dumps(event_grid(data=data(contentLength="big"))),
    ],
)
def test_events_that_cannot_be_understood_raise(body: str | bytes) -> None:
    with pytest.raises(InvalidEventError):
        from_json_body(body)


def test_a_listing_and_event_grid_agree_on_the_image_id() -> None:
    blob = BlobInfo("2026/a cat.jpg", 524288, "0x8D4BCC2E4835CD0", "image/jpeg", 1.0)
    listed = created_from_listing("photos", "https://photos.blob.core.windows.net", "uploads", blob)
    received = from_event_dict(event_grid())
    assert received is not None
    assert listed.image_id == received.image_id
    assert listed.data.url == received.data.url
    assert listed.data.e_tag == received.data.e_tag


def test_image_ids_are_stable_and_distinct() -> None:
    a = image_id("acct", "c", "x.jpg")
    assert a == image_id("acct", "c", "x.jpg")
    assert len(a) == 32 and all(ch in "0123456789abcdef" for ch in a)
    others = {
        image_id("acct", "c", "y.jpg"),
        image_id("acct", "d", "x.jpg"),
        image_id("b", "c", "x.jpg"),
    }
    assert a not in others and len(others) == 3
    # Pinned: ids are Kafka keys and Milvus keys; changing the formula orphans them all.
    assert image_id("devstoreaccount1", "uploads", "a.jpg") == "f9df150de4bb179be75d519d4a48a9c3"


def test_filters() -> None:
    event = from_event_dict(event_grid())
    assert event is not None
    assert EventFilter().accepts(event)
    assert EventFilter(containers=frozenset({"uploads"})).accepts(event)
    assert not EventFilter(containers=frozenset({"other"})).accepts(event)
    assert EventFilter(prefix="2026/").accepts(event)
    assert not EventFilter(prefix="2025/").accepts(event)
    assert EventFilter(content_types=("image/*",)).accepts(event)
    assert EventFilter(content_types=("IMAGE/JPEG",)).accepts(event)
    assert not EventFilter(content_types=("image/png", "video/*")).accepts(event)
    event.data.content_type = "image/jpeg; charset=binary"
    assert EventFilter(content_types=("image/jpeg",)).accepts(event)
    event.data.content_type = ""
    assert not EventFilter(content_types=("image/*",)).accepts(event)
    event.event_type = BLOB_DELETED  # a delete may carry no content type: let it through
    assert EventFilter(content_types=("image/*",)).accepts(event)
