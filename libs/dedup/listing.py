"""Blob events from container listings: the back-fill of an existing container, and the
watch of a container that sends no events (Azurite has neither Event Grid nor a change
feed). `dedup ingest backfill|watch` and `dedup demo` all publish through here.

Both work a page at a time (memory does not grow with the container) and save their
state only after Kafka acknowledged the events of the page: a kill loses nothing, and a
rerun repeats at most one page (the hasher is idempotent).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from google.protobuf.message import Message

from dedup.blob import BlobInfo
from dedup.events import EventFilter, created_from_listing
from dedup.v1.events_pb2 import BlobEvent

# Blobs modified this close (seconds) before the newest one seen are remembered by name
# and ETag: Last-Modified has a one-second resolution and a blob committed while the
# previous poll was listing may carry an older time than blobs it listed.
WATCH_MARGIN_SECONDS = 5.0


class Publisher(Protocol):
    """dedup.runtime.Publisher's interface, as the listing uses it."""

    async def publish(self, topic: str, key: str, message: Message) -> None: ...

    async def flush(self) -> None: ...


class Pages(Protocol):
    """dedup.blob.BlobStore.list_pages."""

    def list_pages(
        self,
        container: str,
        prefix: str | None = None,
        continuation: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[tuple[list[BlobInfo], str | None]]: ...


class StateFileError(ValueError):
    """A state file that belongs to another container or prefix: a mistake in the command."""


@dataclass(frozen=True)
class Source:
    """Where the blobs are and where their events go."""

    account: str
    account_url: str
    container: str
    topic: str
    prefix: str = ""
    event_filter: EventFilter = field(default_factory=EventFilter)
    # Blobs per listing page (None: the service's default, 5,000 on Azure).
    page_size: int | None = None

    def event(self, blob: BlobInfo) -> BlobEvent | None:
        """The BlobCreated event of a listed blob, or None if the filter refuses it."""
        event = created_from_listing(self.account, self.account_url, self.container, blob)
        return event if self.event_filter.accepts(event) else None


def _write_json(path: Path, data: dict[str, object]) -> None:
    """Replace `path` atomically: a kill mid-write leaves the previous state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


# ---- back-fill ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillState:
    container: str
    prefix: str
    # The marker to resume after the last acknowledged page; None: from the start.
    continuation: str | None = None
    listed: int = 0
    published: int = 0
    done: bool = False

    def save(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path, container: str, prefix: str) -> BackfillState:
        """The saved state of this container and prefix, or a fresh one."""
        if not path.exists():
            return cls(container, prefix)
        saved = cls(**json.loads(path.read_text()))
        if (saved.container, saved.prefix) != (container, prefix):
            raise StateFileError(
                f"{path} holds the back-fill of {saved.container}/{saved.prefix}*,"
                f" not {container}/{prefix}*: use another --state file"
            )
        return saved


async def backfill(
    pages: Pages,
    publisher: Publisher,
    source: Source,
    state: BackfillState,
    on_page: Callable[[BackfillState], None] = lambda _: None,
) -> BackfillState:
    """Publish a BlobCreated event for every blob, page by page, from `state` on.

    `on_page` gets the state after each page's events are acknowledged: save it there.
    """
    if state.done:
        return state
    async for blobs, marker in pages.list_pages(
        source.container, source.prefix or None, state.continuation, source.page_size
    ):
        published = 0
        for blob in blobs:
            event = source.event(blob)
            if event is not None:
                await publisher.publish(source.topic, event.image_id, event)
                published += 1
        await publisher.flush()
        state = replace(
            state,
            continuation=marker,
            listed=state.listed + len(blobs),
            published=state.published + published,
            done=marker is None,
        )
        on_page(state)
    if not state.done:  # an empty listing has no page
        state = replace(state, done=True)
        on_page(state)
    return state


# ---- watch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchState:
    container: str
    prefix: str
    # The newest Last-Modified seen (Unix seconds).
    watermark: float = 0.0
    # name -> ETag of the blobs modified within WATCH_MARGIN_SECONDS of the watermark.
    recent: dict[str, str] = field(default_factory=dict)

    def is_new(self, blob: BlobInfo) -> bool:
        if blob.last_modified > self.watermark:
            return True
        if blob.last_modified < self.watermark - WATCH_MARGIN_SECONDS:
            return False
        return self.recent.get(blob.name) != blob.etag

    def save(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path, container: str, prefix: str) -> WatchState:
        if not path.exists():
            return cls(container, prefix)
        saved = cls(**json.loads(path.read_text()))
        if (saved.container, saved.prefix) != (container, prefix):
            raise StateFileError(
                f"{path} holds the watch of {saved.container}/{saved.prefix}*,"
                f" not {container}/{prefix}*: use another --state file"
            )
        return saved


@dataclass
class _Newest:
    """The newest Last-Modified of a listing and the blobs within the margin of it."""

    watermark: float
    recent: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add(self, blob: BlobInfo) -> None:
        if blob.last_modified > self.watermark:
            self.watermark = blob.last_modified
            floor = self.watermark - WATCH_MARGIN_SECONDS
            self.recent = {n: v for n, v in self.recent.items() if v[0] >= floor}
        if blob.last_modified >= self.watermark - WATCH_MARGIN_SECONDS:
            self.recent[blob.name] = (blob.last_modified, blob.etag)


async def poll(
    pages: Pages,
    publisher: Publisher,
    source: Source,
    state: WatchState,
    on_event: Callable[[BlobEvent], None] = lambda _: None,
) -> tuple[WatchState, int]:
    """One pass over the container: publish the blobs that are new since `state` (new
    names, and overwrites: a new Last-Modified and ETag). Returns the next state (to save
    once this returns: everything is acknowledged) and how many events were published."""
    newest = _Newest(state.watermark)
    published = 0
    async for blobs, _ in pages.list_pages(
        source.container, source.prefix or None, None, source.page_size
    ):
        for blob in blobs:
            if state.is_new(blob):
                event = source.event(blob)
                if event is not None:
                    await publisher.publish(source.topic, event.image_id, event)
                    on_event(event)
                    published += 1
            newest.add(blob)
    # Once for the pass: its state is saved only after it, so a failure anywhere redoes
    # the whole pass (a transactional publisher makes that free of duplicates).
    await publisher.flush()
    recent = {name: etag for name, (_, etag) in newest.recent.items()}
    return replace(state, watermark=newest.watermark, recent=recent), published
