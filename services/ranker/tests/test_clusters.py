"""The ranker's core, one behaviour at a time."""

import pytest

from dedup.errors import InvalidMessageError
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup
from services.ranker.handler import COMPUTED, Ranker, card, describe
from services.ranker.tests.helpers import DUP, REJ, SIM, Img, Topic, deleted, group

KEEP = DecisionKind.DECISION_KIND_KEEP
DUPLICATE = DecisionKind.DECISION_KIND_DUPLICATE
UNIQUE = DecisionKind.DECISION_KIND_UNIQUE
UNREADABLE = DecisionKind.DECISION_KIND_UNREADABLE
GONE = DecisionKind.DECISION_KIND_DELETED

A, B, C, D, E = (Img(n, quality=q) for n, q in zip("abcde", (0.5, 0.9, 0.3, 0.8, 0.1), strict=True))


def feed(*groups: CandidateGroup) -> tuple[Ranker, Topic]:
    ranker, topic = Ranker(), Topic()
    for g in groups:
        topic.publish(ranker.handle(g))
    return ranker, topic


def kinds(topic: Topic) -> dict[str, tuple[int, str, str]]:
    return {i: (d.kind, d.cluster_id, d.duplicate_of) for i, d in sorted(topic.latest.items())}


def test_an_image_without_duplicates_is_unique_and_described() -> None:
    ranker, topic = feed(group(A))
    d = topic.latest["a"]
    assert d.kind == UNIQUE and d.cluster_id == "" and d.duplicate_of == ""
    assert d.reason == "no duplicate found"
    assert (d.container, d.blob_name, d.size_bytes, d.width, d.height) == (
        "uploads",
        "a.jpg",
        1000,
        100,
        100,
    )
    assert d.blob_url == "http://blob/uploads/a.jpg"
    assert d.working_copy_url == "http://blob/derived/a.jpg"
    assert d.status == ImageStatus.IMAGE_STATUS_OK and d.quality == pytest.approx(0.5)
    assert len(ranker) == 1


def test_a_proven_duplicate_joins_the_cluster_and_the_best_copy_is_kept() -> None:
    _, topic = feed(group(A), group(B, [(A, DUP)]))
    assert kinds(topic) == {"a": (DUPLICATE, "a", "b"), "b": (KEEP, "a", "")}
    dup = topic.latest["a"]
    assert dup.evidence.inliers == 2 and dup.evidence.aligned_residual == pytest.approx(0.01)
    assert dup.reason == "matcher: b~a"
    assert "best of 2" in topic.latest["b"].reason


def test_similar_is_reported_both_ways_and_never_merged() -> None:
    _, topic = feed(group(A), group(B, [(A, SIM)]))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (UNIQUE, "", "")}
    assert list(topic.latest["a"].similar) == ["b"]
    assert list(topic.latest["b"].similar) == ["a"]


def test_rejected_candidates_are_ignored() -> None:
    _, topic = feed(group(A), group(B, [(A, REJ)]))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (UNIQUE, "", "")}
    assert not topic.latest["b"].links


@pytest.mark.parametrize(
    ("x", "y", "kept"),
    [
        (Img("x", 0.5, 200, 100), Img("y", 0.5, 100, 100), "x"),  # more pixels
        (Img("x", 0.5, size=10), Img("y", 0.5, size=20), "y"),  # larger file
        (Img("x", 0.5), Img("y", 0.5), "x"),  # all equal: the smallest id
        (Img("x", float("nan")), Img("y", 0.1), "y"),  # no quality is the worst quality
    ],
)
def test_ties_are_broken_deterministically(x: Img, y: Img, kept: str) -> None:
    for order in ([group(x), group(y, [(x, DUP)])], [group(y), group(x, [(y, DUP)])]):
        _, topic = feed(*order)
        assert {i for i, d in topic.latest.items() if d.kind == KEEP} == {kept}


def test_clusters_merge_and_every_affected_image_is_redecided() -> None:
    ranker, topic = feed(group(A), group(C, [(A, DUP)]), group(D), group(E, [(D, DUP)]))
    assert kinds(topic)["c"] == (DUPLICATE, "a", "a") and kinds(topic)["e"] == (DUPLICATE, "d", "d")
    outcome = topic.publish(ranker.handle(group(B, [(C, DUP), (E, DUP)])))
    assert {d.image_id for d in outcome.decisions} == {"a", "b", "c", "d", "e"}
    assert outcome.cluster_sizes == [5]
    assert outcome.new_duplicates == 2  # a and d were kept copies before
    assert kinds(topic) == {
        "a": (DUPLICATE, "a", "b"),
        "b": (KEEP, "a", ""),
        "c": (DUPLICATE, "a", "b"),
        "d": (DUPLICATE, "a", "b"),
        "e": (DUPLICATE, "a", "b"),
    }
    # a is linked to b only through c: the evidence says so.
    assert topic.latest["a"].reason == "via c: matcher: c~a"
    assert topic.latest["c"].reason == "matcher: b~c"


def test_deleting_the_kept_copy_elects_the_next_best() -> None:
    ranker, topic = feed(group(A), group(B, [(A, DUP)]), group(D, [(A, DUP)]))
    assert topic.latest["b"].kind == KEEP
    outcome = topic.publish(ranker.handle(deleted(B)))
    assert {d.image_id for d in outcome.decisions} == {"a", "b", "d"}
    assert kinds(topic) == {"a": (DUPLICATE, "a", "d"), "b": (GONE, "", ""), "d": (KEEP, "a", "")}
    gone = topic.latest["b"]
    assert gone.status == ImageStatus.IMAGE_STATUS_DELETED and gone.reason == "blob deleted"
    assert gone.blob_name == "b.jpg" and gone.size_bytes == 1000  # still described
    assert not gone.links


def test_deleting_a_bridge_splits_the_cluster() -> None:
    _, topic = feed(group(A), group(C), group(B, [(A, DUP), (C, DUP)]), deleted(B))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (GONE, "", ""), "c": (UNIQUE, "", "")}


def test_a_late_group_cannot_link_to_a_deleted_image() -> None:
    _, topic = feed(group(A), deleted(A), group(B, [(A, DUP)]))
    assert kinds(topic) == {"a": (GONE, "", ""), "b": (UNIQUE, "", "")}
    assert not topic.latest["b"].links


def test_a_deleted_image_uploaded_again_comes_back_alone() -> None:
    _, topic = feed(group(A), group(B, [(A, DUP)]), deleted(A), group(A, e_tag="etag-2"))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (UNIQUE, "", "")}


def test_new_content_under_the_same_name_voids_what_others_proved() -> None:
    ranker, topic = feed(group(A), group(B, [(A, DUP)]))
    topic.publish(ranker.handle(group(A, e_tag="etag-2")))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (UNIQUE, "", "")}
    assert not topic.latest["b"].links


def test_the_same_etag_quoted_or_not_is_the_same_content() -> None:
    # A back-fill (listing: quoted) and a live event (Event Grid: bare) of the same blob.
    ranker, topic = feed(group(A, e_tag='"0x8D1"'), group(B, [(A, DUP)]))
    topic.publish(ranker.handle(group(A, e_tag="0x8D1")))
    assert kinds(topic)["a"] == (DUPLICATE, "a", "b")


def test_unreadable_images_get_their_status_and_reason() -> None:
    bad = group(A, status=ImageStatus.IMAGE_STATUS_CORRUPT, reason="truncated JPEG")
    _, topic = feed(bad)
    d = topic.latest["a"]
    assert (d.kind, d.status, d.reason) == (
        UNREADABLE,
        ImageStatus.IMAGE_STATUS_CORRUPT,
        bad.image.reason,
    )


def test_an_unreadable_image_leaves_its_cluster() -> None:
    ranker, topic = feed(group(A), group(B, [(A, DUP)]))
    topic.publish(ranker.handle(group(B, status=ImageStatus.IMAGE_STATUS_CORRUPT, reason="x")))
    assert kinds(topic) == {"a": (UNIQUE, "", ""), "b": (UNREADABLE, "", "")}


def test_a_candidate_seen_before_its_own_group_is_decided_then_completed() -> None:
    ranker, topic = feed(group(B, [(A, DUP)]))
    early = topic.latest["a"]
    assert (early.kind, early.status) == (DUPLICATE, ImageStatus.IMAGE_STATUS_UNSPECIFIED)
    assert early.blob_url == "http://blob/uploads/a.jpg" and early.quality == pytest.approx(0.5)
    topic.publish(ranker.handle(group(A)))
    late = topic.latest["a"]
    assert (late.kind, late.duplicate_of, late.status) == (
        DUPLICATE,
        "b",
        ImageStatus.IMAGE_STATUS_OK,
    )
    assert late.blob_name == "a.jpg"


def test_redelivery_changes_nothing_and_republishes_only_the_image_itself() -> None:
    ranker, topic = feed(group(A), group(C), group(B, [(A, DUP), (C, SIM)]))
    before = {i: card(d) for i, d in topic.latest.items()}
    outcome = ranker.handle(group(B, [(A, DUP), (C, SIM)]))
    assert [d.image_id for d in outcome.decisions] == ["b"]
    assert outcome.new_duplicates == 0
    topic.publish(outcome)
    assert {i: card(d) for i, d in topic.latest.items()} == before


def test_the_state_is_rebuilt_from_the_decisions_alone() -> None:
    _, topic = feed(group(A), group(C, [(A, DUP)]), group(D), group(E, [(D, SIM)]))
    restored = topic.restart()
    assert len(restored) == 4 and restored.linked == 4
    outcome = topic.publish(restored.handle(group(B, [(C, DUP), (D, DUP)])))
    assert {d.image_id for d in outcome.decisions} == {"a", "b", "c", "d"}  # e: no change
    assert kinds(topic)["a"] == (DUPLICATE, "a", "b")
    assert kinds(topic)["d"] == (DUPLICATE, "a", "b")
    assert list(topic.latest["e"].similar) == ["d"]


def test_restore_repairs_a_half_written_deletion() -> None:
    # A crash between the two writes of a deletion: a's DELETED landed, b's update did not.
    _, topic = feed(group(A), group(B, [(A, DUP)]))
    stale_b = topic.latest["b"]
    ranker, _ = feed(group(A), group(B, [(A, DUP)]))
    gone = next(d for d in ranker.handle(deleted(A)).decisions if d.image_id == "a")
    restored = Ranker()
    repair = restored.restore([gone, stale_b])
    assert {d.image_id: d.kind for d in repair.decisions} == {"b": UNIQUE}
    assert not repair.decisions[0].links
    assert [d.image_id for d in restored.handle(deleted(A)).decisions] == ["a"]


def test_restore_repairs_a_link_to_an_image_without_a_decision() -> None:
    _, topic = feed(group(A), group(B, [(A, DUP)]))
    repair = Ranker().restore([topic.latest["b"]])
    assert {d.image_id: d.kind for d in repair.decisions} == {"a": DUPLICATE}  # b: no change


def test_restoring_a_consistent_topic_repairs_nothing() -> None:
    _, topic = feed(group(A), group(B, [(A, DUP)]), group(C, [(B, SIM)]), deleted(C))
    assert Ranker().restore(topic.latest.values()).decisions == []


def test_a_group_without_an_id_is_refused() -> None:
    with pytest.raises(InvalidMessageError):
        Ranker().handle(CandidateGroup())


def test_a_candidate_listed_twice_counts_once_and_duplicate_wins() -> None:
    g = group(B, [(A, SIM), (A, DUP), (B, DUP)])  # and itself, which is ignored
    _, topic = feed(group(A), g)
    assert [(k.image_id, k.verdict) for k in topic.latest["b"].links] == [("a", DUP)]
    assert topic.latest["a"].kind == DUPLICATE


def test_computed_fields_are_decision_fields() -> None:
    names = set(Decision.DESCRIPTOR.fields_by_name)
    assert set(COMPUTED) <= names
    described = {f.name for f, _ in describe(group(A)).ListFields()}
    assert not described & set(COMPUTED)
