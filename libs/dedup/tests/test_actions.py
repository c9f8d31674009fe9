"""`dedup act`: what it plans to do to each duplicate, and what it refuses to do."""

import pytest

from dedup import actions
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus

KEEP = DecisionKind.DECISION_KIND_KEEP
DUPLICATE = DecisionKind.DECISION_KIND_DUPLICATE
UNIQUE = DecisionKind.DECISION_KIND_UNIQUE


def decision(image_id: str, kind: "DecisionKind.ValueType", **fields: object) -> Decision:
    d = Decision(
        image_id=image_id,
        kind=kind,
        container="uploads",
        blob_name=f"{image_id}.jpg",
        e_tag=f"0x{image_id.upper()}",
        status=ImageStatus.IMAGE_STATUS_OK,
        size_bytes=100,
    )
    for name, value in fields.items():
        setattr(d, name, value)
    return d


def dup(image_id: str, of: str = "k", cluster: str = "c", **fields: object) -> Decision:
    return decision(image_id, DUPLICATE, duplicate_of=of, cluster_id=cluster, **fields)


KEPT = decision("k", KEEP, cluster_id="c")


def test_tagging_plans_one_action_per_duplicate_with_both_tags() -> None:
    planned, skipped = actions.plan([KEPT, dup("a"), dup("b"), decision("u", UNIQUE)], "tag")
    assert skipped == []
    assert [(a.name, a.tags) for a in planned] == [
        ("uploads/a.jpg", {"dedup-duplicate-of": "k", "dedup-cluster": "c"}),
        ("uploads/b.jpg", {"dedup-duplicate-of": "k", "dedup-cluster": "c"}),
    ]
    assert all(a.target is None for a in planned)


def test_quarantine_moves_under_the_source_container_with_what_it_duplicates() -> None:
    odd = dup("a", blob_name="2024/ünï <x>.jpg")
    (planned,), _ = actions.plan([KEPT, odd], "quarantine", "quarantine")
    assert planned.target == ("quarantine", "uploads/2024/ünï <x>.jpg")
    assert planned.e_tag == "0xA"
    assert planned.metadata == {
        "dedup_duplicate_of": "k",
        "dedup_cluster": "c",
        "dedup_source": "uploads/2024/%C3%BCn%C3%AF%20%3Cx%3E.jpg",
        "dedup_kept": "uploads/k.jpg",
    }
    assert all(v.isascii() for v in planned.metadata.values())


@pytest.mark.parametrize(
    ("others", "reason"),
    [
        ([], "not confirmed"),  # the kept copy has no decision
        ([decision("k", DUPLICATE, cluster_id="c", duplicate_of="z")], "not confirmed"),
        ([decision("k", KEEP, cluster_id="other")], "not confirmed"),
        (
            [decision("k", KEEP, cluster_id="c", status=ImageStatus.IMAGE_STATUS_DELETED)],
            "not confirmed",
        ),
    ],
)
def test_a_duplicate_whose_kept_copy_is_not_confirmed_is_left_alone(
    others: list[Decision], reason: str
) -> None:
    for mode in ("tag", "quarantine"):
        planned, skipped = actions.plan([*others, dup("a")], mode, "q")
        assert planned == []
        assert any(s.image_id == "a" and reason in s.reason for s in skipped)


def test_a_duplicate_known_only_as_a_candidate_is_left_alone() -> None:
    unseen = dup("a", container="", blob_name="", status=ImageStatus.IMAGE_STATUS_UNSPECIFIED)
    planned, skipped = actions.plan([KEPT, unseen], "tag")
    assert planned == [] and "location unknown" in skipped[0].reason


def test_quarantine_needs_an_etag_and_never_touches_the_quarantine_itself() -> None:
    no_etag = dup("a", e_tag="")
    inside = dup("b", container="q")
    planned, skipped = actions.plan([KEPT, no_etag, inside], "quarantine", "q")
    assert planned == []
    assert sorted(s.reason for s in skipped) == [
        "already in the quarantine container",
        "no ETag: cannot make sure the blob is the version judged",
    ]
    # Tagging is harmless and needs neither.
    assert len(actions.plan([KEPT, no_etag], "tag")[0]) == 1


def test_quarantine_without_a_container_is_refused() -> None:
    with pytest.raises(ValueError, match="container"):
        actions.plan([KEPT], "quarantine")


@pytest.mark.parametrize(
    "argv", [[], ["--apply"], ["--tag", "--quarantine", "q"], ["--tag", "--limit", "-1"]]
)
def test_the_command_needs_exactly_one_action(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        actions.main(argv)
    assert exit_.value.code == 2


def test_the_dry_run_describes_each_action() -> None:
    (tag,), _ = actions.plan([KEPT, dup("a")], "tag")
    (move,), _ = actions.plan([KEPT, dup("a")], "quarantine", "q")
    assert actions.describe(tag, "tag") == (
        "tag uploads/a.jpg: dedup-duplicate-of=k, dedup-cluster=c"
    )
    assert actions.describe(move, "quarantine") == (
        "move uploads/a.jpg -> q/uploads/a.jpg (duplicate of uploads/k.jpg)"
    )
