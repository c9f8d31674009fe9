"""Back-fill and watch over a fake paged listing: resumable, bounded, nothing missed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.message import Message

from dedup.blob import BlobInfo
from dedup.events import EventFilter
from dedup.listing import (
    WATCH_MARGIN_SECONDS,
    BackfillState,
    Source,
    WatchState,
    backfill,
    poll,
)
from dedup.v1.events_pb2 import BlobEvent

SOURCE = Source("acct", "http://blobs/acct", "c", "events")


@dataclass
class FakePages:
    """A container listed `page_size` blobs a page, with the marker of the next page."""

    blobs: list[BlobInfo]
    page_size: int = 3
    fail_at_page: int | None = None
    pages_served: int = 0

    async def list_pages(
        self,
        container: str,
        prefix: str | None = None,
        continuation: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[tuple[list[BlobInfo], str | None]]:
        listed = sorted(
            (b for b in self.blobs if b.name.startswith(prefix or "")), key=lambda b: b.name
        )
        start = int(continuation or 0)
        for at in range(start, len(listed), self.page_size):
            if self.fail_at_page == self.pages_served:
                self.fail_at_page = None
                raise ConnectionError("listing interrupted")
            self.pages_served += 1
            end = at + self.page_size
            yield listed[at:end], (str(end) if end < len(listed) else None)


@dataclass
class FakePublisher:
    sent: list[tuple[str, str, BlobEvent]] = field(default_factory=list)
    acked: int = 0

    async def publish(self, topic: str, key: str, message: Message) -> None:
        assert isinstance(message, BlobEvent)
        self.sent.append((topic, key, message))

    async def flush(self) -> None:
        self.acked = len(self.sent)


def blob(
    name: str, modified: float = 100.0, etag: str = "e1", kind: str = "image/jpeg"
) -> BlobInfo:
    return BlobInfo(name, 10, etag, kind, modified)


def names(publisher: FakePublisher) -> list[str]:
    return [event.blob_name for _, _, event in publisher.sent]


async def test_backfill_publishes_every_blob_and_saves_after_each_acked_page() -> None:
    pages = FakePages([blob(f"b{i:02d}") for i in range(8)])
    publisher = FakePublisher()
    saved: list[BackfillState] = []

    def on_page(state: BackfillState) -> None:
        assert publisher.acked == len(publisher.sent)  # saved only after the acks
        saved.append(state)

    state = await backfill(pages, publisher, SOURCE, BackfillState("c", ""), on_page)
    assert names(publisher) == [f"b{i:02d}" for i in range(8)]
    assert all(topic == "events" and key == e.image_id for topic, key, e in publisher.sent)
    assert [s.continuation for s in saved] == ["3", "6", None]
    assert [s.listed for s in saved] == [3, 6, 8]
    assert state.done and state.published == 8


async def test_backfill_resumes_after_the_last_saved_page(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pages = FakePages([blob(f"b{i:02d}") for i in range(8)], fail_at_page=2)
    first = FakePublisher()
    fresh = BackfillState.load(path, "c", "")
    with pytest.raises(ConnectionError):
        await backfill(pages, first, SOURCE, fresh, lambda s: s.save(path))
    assert names(first) == [f"b{i:02d}" for i in range(6)]

    resumed = BackfillState.load(path, "c", "")
    assert (resumed.continuation, resumed.listed, resumed.done) == ("6", 6, False)
    second = FakePublisher()
    state = await backfill(pages, second, SOURCE, resumed, lambda s: s.save(path))
    assert names(second) == ["b06", "b07"]
    assert (state.listed, state.published, state.done) == (8, 8, True)
    assert BackfillState.load(path, "c", "").done
    # A finished back-fill does nothing when run again.
    third = FakePublisher()
    await backfill(pages, third, SOURCE, BackfillState.load(path, "c", ""))
    assert third.sent == []


def test_a_state_file_belongs_to_one_container_and_prefix(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    BackfillState("c", "p/", "7", 7, 7).save(path)
    assert BackfillState.load(path, "c", "p/").continuation == "7"
    with pytest.raises(ValueError, match="another --state"):
        BackfillState.load(path, "other", "p/")
    WatchState("c", "", 5.0, {"a": "e"}).save(path)
    assert WatchState.load(path, "c", "") == WatchState("c", "", 5.0, {"a": "e"})


async def test_backfill_of_an_empty_container_is_done() -> None:
    state = await backfill(FakePages([]), FakePublisher(), SOURCE, BackfillState("c", ""))
    assert state.done and state.listed == 0


async def test_filters_apply_to_listings() -> None:
    pages = FakePages([blob("a.jpg"), blob("notes.txt", kind="text/plain"), blob("b.png", kind="")])
    publisher = FakePublisher()
    source = Source(
        "acct", "u", "c", "events", event_filter=EventFilter(content_types=("image/*",))
    )
    state = await backfill(pages, publisher, source, BackfillState("c", ""))
    assert names(publisher) == ["a.jpg"]
    assert (state.listed, state.published) == (3, 1)


async def test_watch_publishes_only_what_is_new_or_changed() -> None:
    pages = FakePages([blob("a", 100), blob("b", 101)])
    publisher = FakePublisher()
    state, count = await poll(pages, publisher, SOURCE, WatchState("c", ""))
    assert count == 2 and state.watermark == 101

    state, count = await poll(pages, publisher, SOURCE, state)
    assert count == 0  # nothing new

    pages.blobs += [blob("c", 105)]
    pages.blobs[0] = blob("a", 106, etag="e2")  # overwritten: processed again
    state, count = await poll(pages, publisher, SOURCE, state)
    assert names(publisher)[2:] == ["a", "c"] and state.watermark == 106


async def test_watch_catches_a_blob_that_appears_late_with_an_older_time() -> None:
    # Last-Modified has one-second resolution, and a blob committed while the previous
    # poll listed may show up later with a time at or below the watermark.
    pages = FakePages([blob("m", 100), blob("z", 100)])
    publisher = FakePublisher()
    state, _ = await poll(pages, publisher, SOURCE, WatchState("c", ""))
    pages.blobs.append(blob("a", 100))  # same second, a name before the others
    pages.blobs.append(blob("old", 100 - WATCH_MARGIN_SECONDS - 1))  # long before: not new
    state, count = await poll(pages, publisher, SOURCE, state)
    assert count == 1 and names(publisher)[-1] == "a"
    assert set(state.recent) == {"a", "m", "z"}


async def test_watch_remembers_only_the_blobs_near_the_watermark() -> None:
    many = [blob(f"old{i}", float(i)) for i in range(50)] + [blob("new", 1000)]
    state, count = await poll(
        FakePages(many, page_size=7), FakePublisher(), SOURCE, WatchState("c", "")
    )
    assert count == 51 and set(state.recent) == {"new"}
