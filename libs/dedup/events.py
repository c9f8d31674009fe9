"""Blob events: the stable image id, BlobCreated events made from a container listing, and
the translation of Event Grid storage events (both schemas) into BlobEvents."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

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
    when.FromNanoseconds(round(blob.last_modified * 1e9))
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


# ---- Event Grid storage events (Event Grid schema and CloudEvents) -> BlobEvent ----------
#
# Event Grid delivers each storage event to an Event Hub as one message whose body is the
# event as JSON (an object, or an array of objects), in the schema the subscription chose:
#
#   Event Grid schema: {"topic": "/subscriptions/.../storageAccounts/<account>",
#       "subject": "/blobServices/default/containers/<container>/blobs/<name>",
#       "eventType": "Microsoft.Storage.BlobCreated", "id", "eventTime", "dataVersion", "data"}
#   CloudEvents 1.0:   {"specversion": "1.0", "source": <as topic>, "subject": <as above>,
#       "type": "Microsoft.Storage.BlobCreated", "id", "time", "data"}
#
# or, for CloudEvents in the AMQP binary content mode, the attributes as application
# properties ("cloudEvents:type", ...) and the body as the `data` object alone.

BLOB_EVENT_TYPES = frozenset({BLOB_CREATED, BLOB_DELETED})
_ACCOUNT_MARKER = "/storageaccounts/"
_CONTAINER_MARKER = "containers/"
_BLOB_MARKER = "/blobs/"
_CLOUD_EVENT_PREFIXES = ("cloudEvents:", "cloudEvents_")


class InvalidEventError(ValueError):
    """A storage event that cannot be understood (bad JSON, no blob in it): dead-letter it."""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _account_from_source(source: str) -> str:
    """`.../providers/Microsoft.Storage/storageAccounts/<account>` -> <account>."""
    lowered = source.lower()
    at = lowered.find(_ACCOUNT_MARKER)
    if at < 0:
        return ""
    return source[at + len(_ACCOUNT_MARKER) :].split("/", 1)[0]


def _account_from_url(url: str) -> str:
    """https://<account>.blob.core.windows.net/... or Azurite's http://host:port/<account>/..."""
    parsed = urlsplit(url)
    host = parsed.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    return unquote(parsed.path.lstrip("/").split("/", 1)[0])


def _container_and_blob(subject: str, url: str) -> tuple[str, str]:
    """From the subject `/blobServices/default/containers/<c>/blobs/<name>` (the name as
    written, not URL-encoded), else from the blob URL."""
    at = subject.find(_CONTAINER_MARKER)
    if at >= 0:
        rest = subject[at + len(_CONTAINER_MARKER) :]
        container, sep, name = rest.partition(_BLOB_MARKER)
        if sep and container and name:
            return container, name
    parsed = urlsplit(url)
    parts = parsed.path.lstrip("/").split("/")
    if ".blob." not in (parsed.hostname or ""):
        parts = parts[1:]  # Azurite's path-style URL: /<account>/<container>/<blob>
    if len(parts) >= 2 and parts[0] and parts[1]:
        return unquote(parts[0]), unquote("/".join(parts[1:]))
    raise InvalidEventError(f"no container and blob in subject {subject!r} or url {url!r}")


def _timestamp(value: str) -> Timestamp:
    when = Timestamp()
    if value:
        try:
            when.FromJsonString(value)
        except ValueError as error:
            raise InvalidEventError(f"bad event time {value!r}") from error
    return when


def _data(data: object) -> BlobEventData:
    if not isinstance(data, Mapping):
        raise InvalidEventError("the event has no data object")
    try:
        length = int(data.get("contentLength") or 0)
    except (TypeError, ValueError) as error:
        raise InvalidEventError(f"bad contentLength {data.get('contentLength')!r}") from error
    return BlobEventData(
        api=_text(data.get("api")),
        client_request_id=_text(data.get("clientRequestId")),
        request_id=_text(data.get("requestId")),
        # Event Grid quotes the ETag ("\"0x8D...\""); a listing does not.
        e_tag=_text(data.get("eTag")).strip('"'),
        content_type=_text(data.get("contentType")),
        content_length=length,
        blob_type=_text(data.get("blobType")),
        url=_text(data.get("url")),
        sequencer=_text(data.get("sequencer")),
    )


def _blob_event(
    *,
    schema: EventSchema.ValueType,
    event_id: str,
    source: str,
    subject: str,
    event_type: str,
    time: str,
    data_version: str,
    data: object,
) -> BlobEvent | None:
    if event_type not in BLOB_EVENT_TYPES:
        return None  # another storage event (tier change, directory, ...): not ours
    blob_data = _data(data)
    container, blob_name = _container_and_blob(subject, blob_data.url)
    account = _account_from_source(source) or _account_from_url(blob_data.url)
    if not account:
        raise InvalidEventError(f"no storage account in source {source!r} or the blob url")
    return BlobEvent(
        image_id=image_id(account, container, blob_name),
        account=account,
        container=container,
        blob_name=blob_name,
        id=event_id,
        topic=source,
        subject=subject,
        event_type=event_type,
        event_time=_timestamp(time),
        data_version=data_version,
        schema=schema,
        data=blob_data,
    )


def from_event_dict(event: Mapping[str, Any]) -> BlobEvent | None:
    """One storage event in either schema (told apart by `specversion`); None when it is
    not a BlobCreated/BlobDeleted event. Raises InvalidEventError."""
    if "specversion" in event:
        return _blob_event(
            schema=EventSchema.EVENT_SCHEMA_CLOUD_EVENTS,
            event_id=_text(event.get("id")),
            source=_text(event.get("source")),
            subject=_text(event.get("subject")),
            event_type=_text(event.get("type")),
            time=_text(event.get("time")),
            data_version=_text(event.get("specversion")),
            data=event.get("data"),
        )
    if "eventType" in event:
        return _blob_event(
            schema=EventSchema.EVENT_SCHEMA_EVENT_GRID,
            event_id=_text(event.get("id")),
            source=_text(event.get("topic")),
            subject=_text(event.get("subject")),
            event_type=_text(event.get("eventType")),
            time=_text(event.get("eventTime")),
            data_version=_text(event.get("dataVersion")),
            data=event.get("data"),
        )
    raise InvalidEventError(
        "neither an Event Grid event (eventType) nor a CloudEvent (specversion)"
    )


def from_json_body(body: str | bytes) -> list[BlobEvent]:
    """The blob events in a message body holding one event or an array of them."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidEventError(f"the body is not JSON: {error}") from error
    items = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(item, Mapping) for item in items):
        raise InvalidEventError("the body holds something other than event objects")
    return [e for e in (from_event_dict(item) for item in items) if e is not None]


def cloud_event_attributes(properties: Mapping[Any, Any]) -> dict[str, str]:
    """CloudEvents attributes carried as AMQP application properties (binary content mode):
    `cloudEvents:type` (or `cloudEvents_type`) -> `type`. Empty for any other message."""
    attributes = {}
    for key, value in properties.items():
        name = _text(key)
        for prefix in _CLOUD_EVENT_PREFIXES:
            if name.startswith(prefix):
                attributes[name[len(prefix) :]] = _text(value)
    return attributes if "specversion" in attributes else {}


def from_message(body: str | bytes, properties: Mapping[Any, Any] | None = None) -> list[BlobEvent]:
    """The blob events of one Event Hubs message, whatever the schema and content mode."""
    attributes = cloud_event_attributes(properties or {})
    if not attributes:
        return from_json_body(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidEventError(f"the CloudEvent data is not JSON: {error}") from error
    event = from_event_dict({**attributes, "data": data})
    return [event] if event is not None else []


@dataclass(frozen=True)
class EventFilter:
    """Which blob events to forward: containers (empty: all), a name prefix, content types
    (`image/*`, `image/jpeg`; empty: all). Deleted events pass without a content type."""

    containers: frozenset[str] = frozenset()
    prefix: str = ""
    content_types: tuple[str, ...] = ()

    def accepts(self, event: BlobEvent) -> bool:
        if self.containers and event.container not in self.containers:
            return False
        if not event.blob_name.startswith(self.prefix):
            return False
        return self.accepts_content_type(event.data.content_type, event.event_type)

    def accepts_content_type(self, content_type: str, event_type: str = BLOB_CREATED) -> bool:
        if not self.content_types:
            return True
        kind = content_type.split(";", 1)[0].strip().lower()
        if not kind:
            return event_type == BLOB_DELETED
        return any(_content_type_matches(kind, pattern) for pattern in self.content_types)


def _content_type_matches(kind: str, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    if pattern.endswith("/*"):
        return kind.startswith(pattern[:-1])
    return kind == pattern
