"""Blob events: the stable image id, and BlobCreated events made from a container listing."""

import hashlib
from urllib.parse import quote

from google.protobuf.timestamp_pb2 import Timestamp

from dedup.blob import BlobInfo
from dedup.v1.events_pb2 import BlobEvent, BlobEventData, EventSchema

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_DELETED = "Microsoft.Storage.BlobDeleted"


def image_id(account: str, container: str, blob_name: str) -> str:
    """A stable id for one blob: the same name in the same container is the same image.

    A hash (not the name) so that it is a safe Kafka key and Milvus primary key of fixed
    length whatever characters the blob name holds.
    """
    return hashlib.sha256(f"{account}/{container}/{blob_name}".encode()).hexdigest()[:32]


def blob_url(account_url: str, container: str, blob_name: str) -> str:
    return f"{account_url.rstrip('/')}/{container}/{quote(blob_name)}"


def created_from_listing(
    account: str, account_url: str, container: str, blob: BlobInfo
) -> BlobEvent:
    """The BlobCreated event Event Grid would have sent for a listed blob (back-fill, watch)."""
    when = Timestamp()
    when.FromSeconds(int(blob.last_modified))
    return BlobEvent(
        image_id=image_id(account, container, blob.name),
        account=account,
        container=container,
        blob_name=blob.name,
        id=f"listing:{blob.etag}",
        subject=f"/blobServices/default/containers/{container}/blobs/{blob.name}",
        event_type=BLOB_CREATED,
        event_time=when,
        schema=EventSchema.EVENT_SCHEMA_LISTING,
        data=BlobEventData(
            api="PutBlob",
            e_tag=blob.etag,
            content_type=blob.content_type,
            content_length=blob.size,
            blob_type="BlockBlob",
            url=blob_url(account_url, container, blob.name),
        ),
    )
