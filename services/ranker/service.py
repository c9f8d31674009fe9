"""The ranker as a service: its state rebuilt from the decisions topic, then the stage.

The decision logic is in `clusters` (pure), the stage and its metrics in `stage`; this
module does the Kafka I/O around them.
"""

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from google.protobuf.message import DecodeError

from dedup.errors import TransientError
from dedup.runtime.contract import Stage
from dedup.runtime.kafka import KafkaError, Publisher, read_topic
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.groups_pb2 import CandidateGroup
from services.ranker.clusters import Ranker
from services.ranker.settings import RankerSettings
from services.ranker.stage import now, publishable, ranker_stage

log = logging.getLogger(__name__)


async def latest_decisions(settings: RankerSettings) -> dict[str, bytes]:
    """The latest decision of every image in the decisions topic (compacted or not yet),
    serialised: bytes hold a decision in a third of the memory of a parsed message."""
    latest: dict[str, bytes] = {}
    async for record in read_topic(
        settings, settings.output_topic, idle_seconds=settings.restore_idle_seconds
    ):
        # Records of one key share a partition, read in offset order: the last one wins.
        if record.value:
            latest[record.key] = record.value
        else:  # a Kafka tombstone: the key was removed on purpose
            latest.pop(record.key, None)
    return latest


def parsed(latest: dict[str, bytes]) -> Iterator[Decision]:
    """Parse and forget, one at a time, so that the raw copy does not double the peak."""
    while latest:
        key, value = latest.popitem()
        try:
            yield Decision.FromString(value)
        except DecodeError:
            log.warning("skipping an unparseable decision", extra={"image_id": key})


async def restore(settings: RankerSettings, ranker: Ranker) -> None:
    """Rebuild the graph from the decisions topic; republish what a crash left half-done."""
    started = time.perf_counter()
    try:
        decisions = await latest_decisions(settings)
        repair = ranker.restore(parsed(decisions))
        del decisions
        if repair.decisions:
            async with Publisher(settings) as publisher:
                for output in publishable(repair, now()):
                    await publisher.publish(settings.output_topic, output.key, output.message)
    except KafkaError as error:
        raise TransientError(
            f"cannot read the decisions topic: {error}", dependency="kafka"
        ) from error
    log.info(
        "restored %d images (%d linked) from %s in %.1f s; %d decisions republished",
        len(ranker),
        ranker.linked,
        settings.output_topic,
        time.perf_counter() - started,
        len(repair.decisions),
        extra={"topic": settings.output_topic},
    )


@asynccontextmanager
async def open_stage(settings: RankerSettings) -> AsyncIterator[Stage[CandidateGroup]]:
    ranker = Ranker()
    await restore(settings, ranker)
    yield ranker_stage(ranker)
