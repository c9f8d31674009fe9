"""The ranker's stage: its decisions stamped, counted and keyed (no Kafka: `dedup scan`
runs it as it is)."""

from collections.abc import Callable, Sequence
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from dedup import metrics
from dedup.runtime.contract import Output, Stage
from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.groups_pb2 import CandidateGroup
from services.ranker.clusters import Outcome, Ranker

STAGE: Final = "ranker"


def decision_label(kind: DecisionKind.ValueType) -> str:
    """DECISION_KIND_DUPLICATE -> duplicate (the `decision` label of dedup_decisions_total)."""
    return DecisionKind.Name(kind).removeprefix("DECISION_KIND_").lower()


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def publishable(outcome: Outcome, decided_at: Timestamp) -> list[Output]:
    """Stamp the decisions, count them, and key each one by its image id."""
    for d in outcome.decisions:
        d.decided_at.CopyFrom(decided_at)
        metrics.DECISIONS.labels(STAGE, decision_label(d.kind)).inc()
    metrics.DUPLICATES_FOUND.labels(STAGE).inc(outcome.new_duplicates)
    for size in outcome.cluster_sizes:
        metrics.CLUSTER_SIZE.labels(STAGE).observe(size)
    return [Output(d.image_id, d) for d in outcome.decisions]


def ranker_stage(ranker: Ranker, clock: Callable[[], Timestamp] = now) -> Stage[CandidateGroup]:
    async def handle(group: CandidateGroup) -> Sequence[Output]:
        # No await before the state changes: one group at a time, in the order delivered.
        return publishable(ranker.handle(group), clock())

    return Stage(STAGE, CandidateGroup, handle, complete_input=True)
