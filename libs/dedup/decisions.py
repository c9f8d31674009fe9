"""The decisions topic read back: the latest decision of every image (the ranker's restore,
`dedup report`, the demo and the tests)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from google.protobuf.message import DecodeError

from dedup.runtime.kafka import read_topic
from dedup.settings import KafkaSettings
from dedup.v1.decisions_pb2 import Decision

log = logging.getLogger(__name__)


async def latest_records(
    kafka: KafkaSettings,
    topic: str,
    *,
    wanted: set[str] | None = None,
    idle_seconds: float = 1.0,
) -> dict[str, bytes]:
    """The latest record of every key (of the `wanted` ones), compacted or not yet, still
    serialised: bytes hold a decision in a third of the memory of a parsed message."""
    latest: dict[str, bytes] = {}
    async for record in read_topic(kafka, topic, idle_seconds=idle_seconds):
        if wanted is not None and record.key not in wanted:
            continue
        # Records of one key share a partition, read in offset order: the last one wins.
        if record.value:
            latest[record.key] = record.value
        else:  # a Kafka tombstone: the key was removed on purpose
            latest.pop(record.key, None)
    return latest


async def each_decision(
    kafka: KafkaSettings, topic: str, *, idle_seconds: float = 1.0
) -> AsyncIterator[tuple[str, Decision | None]]:
    """Every record of the topic in its order, parsed (None: a tombstone), holding none of
    them: a reader that keeps the last of each key has the latest decisions, as
    `latest_records`, without the whole topic in memory at once."""
    async for record in read_topic(kafka, topic, idle_seconds=idle_seconds):
        if not record.value:
            yield record.key, None
            continue
        try:
            yield record.key, Decision.FromString(record.value)
        except DecodeError:
            log.warning("skipping an unparseable decision", extra={"image_id": record.key})


def parse_each(latest: dict[str, bytes]) -> Iterator[tuple[str, Decision]]:
    """Parse and forget, one at a time, so that the raw copy does not double the peak; an
    unparseable record is skipped with a warning."""
    while latest:
        key, value = latest.popitem()
        try:
            yield key, Decision.FromString(value)
        except DecodeError:
            log.warning("skipping an unparseable decision", extra={"image_id": key})


async def latest_decisions(
    kafka: KafkaSettings,
    topic: str,
    *,
    wanted: set[str] | None = None,
    idle_seconds: float = 1.0,
) -> dict[str, Decision]:
    """image id -> its latest decision."""
    records = await latest_records(kafka, topic, wanted=wanted, idle_seconds=idle_seconds)
    return dict(parse_each(records))
