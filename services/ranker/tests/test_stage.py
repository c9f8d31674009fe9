"""The stage around the core: outputs keyed by image id, stamped, counted."""

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from dedup.v1.decisions_pb2 import Decision, DecisionKind
from services.ranker.handler import Ranker
from services.ranker.settings import RankerSettings
from services.ranker.stage import decision_label, ranker_stage
from services.ranker.tests.helpers import DUP, Img, group


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "ranker", **labels}) or 0.0


def fixed_clock() -> Timestamp:
    return Timestamp(seconds=1_700_000_000)


async def test_the_stage_publishes_stamped_decisions_keyed_by_image_id_and_counts_them() -> None:
    stage = ranker_stage(Ranker(), fixed_clock)
    found = sample("dedup_duplicates_found_total")
    duplicates = sample("dedup_decisions_total", decision="duplicate")
    clusters = sample("dedup_cluster_size_count")
    a, b = Img("a", 0.2), Img("b", 0.9)
    await stage.handle(group(a))
    outputs = await stage.handle(group(b, [(a, DUP)]))
    assert sorted(o.key for o in outputs) == ["a", "b"]
    for o in outputs:
        assert isinstance(o.message, Decision) and o.topic is None
        assert o.message.image_id == o.key and o.message.decided_at.seconds == 1_700_000_000
    assert sample("dedup_duplicates_found_total") == found + 1
    assert sample("dedup_decisions_total", decision="duplicate") == duplicates + 1
    assert sample("dedup_cluster_size_count") == clusters + 1


def test_decision_labels_are_the_agreed_ones() -> None:
    labels = {decision_label(k) for k in DecisionKind.values() if k}
    assert labels == {"keep", "duplicate", "unique", "unreadable", "deleted"}


def test_settings_default_to_the_pipeline_topics_and_one_group_at_a_time() -> None:
    s = RankerSettings()
    assert (s.input_topic, s.output_topic, s.http_port) == (
        "dedup.matched.v1",
        "dedup.decisions.v1",
        9105,
    )
    assert s.concurrency == 1
