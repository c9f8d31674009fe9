"""The ranker's stage: its decisions stamped, counted and keyed, and its state rebuilt
from the decisions topic when the service starts.

The decision logic is in handler.py (pure). `python -m services.ranker` restores the graph
and runs the stage with the Kafka runner (`open_stage`, __main__.py); `dedup scan` runs
`ranker_stage` as it is, with no Kafka.
"""

import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from dedup import metrics
from dedup.decisions import each_decision
from dedup.errors import TransientError
from dedup.runtime.contract import Output, Stage
from dedup.runtime.kafka import KafkaError, Publisher
from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.groups_pb2 import CandidateGroup
from services.ranker.cards import SpilledCards
from services.ranker.graph import SpilledGraph
from services.ranker.handler import Outcome, Ranker
from services.ranker.settings import RankerSettings

STAGE: Final = "ranker"
log = logging.getLogger(__name__)


def decision_label(kind: DecisionKind.ValueType) -> str:
    """DECISION_KIND_DUPLICATE -> duplicate (the `decision` label of dedup_decisions_total)."""
    return DecisionKind.Name(kind).removeprefix("DECISION_KIND_").lower()


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def stamped(outcome: Outcome, decided_at: Timestamp) -> list[Output]:
    """The decisions stamped with their time, each keyed by its image id."""
    for d in outcome.decisions:
        d.decided_at.CopyFrom(decided_at)
    return [Output(d.image_id, d) for d in outcome.decisions]


def count(outcome: Outcome) -> None:
    for d in outcome.decisions:
        metrics.DECISIONS.labels(STAGE, decision_label(d.kind)).inc()
    metrics.DUPLICATES_FOUND.labels(STAGE).inc(outcome.new_duplicates)
    for size in outcome.cluster_sizes:
        metrics.CLUSTER_SIZE.labels(STAGE).observe(size)


def publishable(outcome: Outcome, decided_at: Timestamp) -> list[Output]:
    """What one outcome publishes, counted."""
    count(outcome)
    return stamped(outcome, decided_at)


def ranker_stage(ranker: Ranker, clock: Callable[[], Timestamp] = now) -> Stage[CandidateGroup]:
    async def handle(group: CandidateGroup) -> Sequence[Output]:
        # No await before the state changes: one group at a time, in the order delivered.
        return publishable(ranker.handle(group), clock())

    return Stage(STAGE, CandidateGroup, handle, complete_input=True)


async def restore(settings: RankerSettings, ranker: Ranker) -> None:
    """Rebuild the graph from the decisions topic; republish what a crash left half-done."""
    started = time.perf_counter()
    try:
        # One record at a time into the ranker (its cards file): the topic is never
        # held in memory whole, so the start-up peak does not grow with the images.
        async for key, decision in each_decision(
            settings, settings.output_topic, idle_seconds=settings.restore_idle_seconds
        ):
            if decision is None:
                ranker.forget(key)
            else:
                ranker.take(decision)
        repair = ranker.repair()
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


@contextmanager
def opened_ranker(settings: RankerSettings) -> Iterator[Ranker]:
    """An empty ranker, its cards and graph where `settings` say (their file gone with
    the process)."""
    if settings.cards_in_memory:
        yield Ranker()
        return
    folder = settings.cards_folder or tempfile.gettempdir()
    cards = SpilledCards(folder, settings.cards_memory_bytes)
    try:
        yield Ranker(cards, SpilledGraph(cards.database))
    finally:
        cards.close()


@asynccontextmanager
async def open_stage(settings: RankerSettings) -> AsyncIterator[Stage[CandidateGroup]]:
    with opened_ranker(settings) as ranker:
        await restore(settings, ranker)
        yield ranker_stage(ranker)
