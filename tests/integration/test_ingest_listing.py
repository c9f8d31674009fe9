"""`dedup ingest backfill` and `watch` against Azurite and Kafka: the commands as
processes, and a back-fill interrupted and resumed from Azurite's own marker."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from google.protobuf.message import Message

from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.events import BLOB_CREATED, image_id
from dedup.listing import BackfillState, Source, backfill
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings
from dedup.v1.events_pb2 import BlobEvent, EventSchema
from tests.integration.conftest import ROOT

ACCOUNT = "devstoreaccount1"


def ingest(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ingest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


async def events_on(kafka: KafkaSettings, topic: str) -> list[BlobEvent]:
    events = []
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        event = BlobEvent()
        event.ParseFromString(record.value)
        assert record.key == event.image_id
        events.append(event)
    return events


async def test_backfill_publishes_each_blob_once_and_watch_sees_changes(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    container, topic = f"it-listing-{run_id}", f"test.{run_id}.blob-events"
    names = [f"2026/{i:02d} photo.jpg" for i in range(12)]
    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "test")
        await store.ensure_container(container)
        for name in names:
            await store.upload(container, name, b"jpeg bytes", "image/jpeg")
        await store.upload(container, "2026/readme.txt", b"text", "text/plain")
        try:
            state = tmp_path / "backfill.json"
            options = ("--container", container, "--topic", topic, "--state", str(state))
            first = ingest("backfill", *options, "--content-types", "image/*", "--expected", "13")
            assert "13 blobs listed" in first.stderr and "12 events published" in first.stderr
            events = await events_on(kafka, topic)
            assert sorted(e.blob_name for e in events) == names  # the text file filtered out
            for event in events:
                assert event.image_id == image_id(ACCOUNT, container, event.blob_name)
                assert event.event_type == BLOB_CREATED
                assert event.schema == EventSchema.EVENT_SCHEMA_LISTING
                assert event.data.content_length == len(b"jpeg bytes") and event.data.e_tag
                assert event.data.url.endswith(
                    f"/{container}/2026/{event.blob_name[5:7]}%20photo.jpg"
                )
            saved = BackfillState.load(state, container, "")
            assert saved.done and (saved.listed, saved.published) == (13, 12)

            again = ingest("backfill", *options)
            assert "is complete" in again.stderr
            assert len(await events_on(kafka, topic)) == 12  # nothing published twice

            watch_state = ("--state", str(tmp_path / "watch.json"))
            watch = ("watch", "--once", "--container", container, "--topic", topic)
            ingest(*watch, *watch_state)  # a first poll: everything is new
            before = Counter(e.blob_name for e in await events_on(kafka, topic))
            assert before == Counter(names * 2 + ["2026/readme.txt"])
            ingest(*watch, *watch_state)  # nothing changed
            assert len(await events_on(kafka, topic)) == 25
            await store.upload(container, names[0], b"other jpeg bytes", "image/jpeg")
            await store.upload(container, "2026/new.jpg", b"jpeg bytes", "image/jpeg")
            ingest(*watch, *watch_state)
            after = Counter(e.blob_name for e in await events_on(kafka, topic))
            # (Partitions interleave when read back: compare counts, not positions.)
            assert after - before == Counter([names[0], "2026/new.jpg"])
        finally:
            await service.delete_container(container)


class FlakyPublisher:
    """The real publisher, whose second flush fails (Kafka went away mid-back-fill)."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.flushes = 0

    async def publish(self, topic: str, key: str, message: Message) -> None:
        await self.publisher.publish(topic, key, message)

    async def flush(self) -> None:
        self.flushes += 1
        if self.flushes == 2:
            raise ConnectionError("kafka went away")
        await self.publisher.flush()


async def test_backfill_resumes_from_azures_own_continuation_marker(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    container, topic = f"it-resume-{run_id}", f"test.{run_id}.blob-events"
    names = [f"img-{i:02d}.jpg" for i in range(12)]
    state_file = tmp_path / "state.json"
    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "test")
        await store.ensure_container(container)
        for name in names:
            await store.upload(container, name, b"jpeg", "image/jpeg")
        source = Source(ACCOUNT, service.url, container, topic, page_size=5)
        try:
            async with Publisher(kafka) as publisher:
                await publisher.ensure_topics([topic])
                with pytest.raises(ConnectionError):
                    await backfill(
                        store,
                        FlakyPublisher(publisher),
                        source,
                        BackfillState(container, ""),
                        lambda s: s.save(state_file),
                    )
            saved = BackfillState.load(state_file, container, "")
            assert saved.continuation and (saved.listed, saved.done) == (5, False)

            async with Publisher(kafka) as publisher:  # "the next run"
                done = await backfill(store, publisher, source, saved, lambda s: s.save(state_file))
            assert (done.listed, done.published, done.done) == (12, 12, True)
        finally:
            await service.delete_container(container)
    published = Counter(e.blob_name for e in await events_on(kafka, topic))
    assert set(published) == set(names)
    assert all(published[n] == 1 for n in names[:5])  # the acknowledged page: not again
