"""`dedup act`: what it plans to do to each duplicate, and what it refuses to do."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from dedup import actions
from dedup.blob import BlobChangedError, BlobExistsError, BlobInfo, BlobMissingError
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
    # Tagging acts only on certainty too: without an ETag nothing can be checked.
    assert actions.plan([KEPT, no_etag], "tag")[0] == []


def test_each_action_names_its_kept_copy_and_the_etag_it_was_judged_with() -> None:
    for mode in ("tag", "quarantine"):
        (planned,), _ = actions.plan([KEPT, dup("a")], mode, "q")
        assert (planned.kept, planned.kept_e_tag, planned.kept_name) == (
            ("uploads", "k.jpg"),
            "0xK",
            "uploads/k.jpg",
        )


@pytest.mark.parametrize(
    ("kept", "reason"),
    [
        (decision("k", KEEP, cluster_id="c", e_tag=""), "no ETag for its kept copy uploads/k.jpg"),
        (decision("k", KEEP, cluster_id="c", container="", blob_name=""), "has no location"),
    ],
)
def test_a_kept_copy_that_cannot_be_checked_stops_its_duplicates(
    kept: Decision, reason: str
) -> None:
    for mode in ("tag", "quarantine"):
        planned, (skip,) = actions.plan([kept, dup("a")], mode, "q")
        assert planned == [] and reason in skip.reason


def planned(mode: actions.Mode = "quarantine") -> actions.Action:
    (action,), _ = actions.plan([KEPT, dup("a")], mode, "q")
    return action


def test_both_blobs_as_judged_is_the_only_way_through() -> None:
    a = planned()
    # ETags compare as HTTP does: Event Grid's 0x... and the SDK's "0x..." are the same.
    assert actions.blocker(a, '"0xK"', "0xA") == ""
    assert actions.blocker(a, None, "0xA") == (
        "its kept copy uploads/k.jpg is gone (moved or deleted since it was judged); left alone"
    )
    assert actions.blocker(a, "0xNEW", "0xA") == (
        'its kept copy uploads/k.jpg changed since it was judged (ETag "0xK" then, '
        '"0xNEW" now); left alone'
    )
    assert actions.blocker(a, "0xK", "0xB") == (
        'changed since it was judged (ETag "0xA" then, "0xB" now); left alone'
    )
    # The kept copy is the first reason: without it, the duplicate's state does not matter.
    assert actions.blocker(a, None, "0xB").startswith("its kept copy")


def test_names_are_shown_escaped_where_they_could_forge_a_line() -> None:
    sneaky = dup("a", blob_name="x\nmoved: y.jpg")
    (move,), _ = actions.plan([KEPT, sneaky], "quarantine", "q")
    assert "\n" not in actions.describe(move, "quarantine")


@dataclass(frozen=True)
class Item:
    name: str
    status: actions.Status


def settled(seen: list[str]) -> Callable[[Item], Awaitable[actions.Outcome]]:
    async def settle(item: Item) -> actions.Outcome:
        seen.append(item.name)
        return actions.Outcome(item.status, f"{item.status}: {item.name}", 10)

    return settle


async def test_a_limit_counts_only_what_is_done(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        Item("a", "already"),
        Item("b", "skipped"),
        Item("c", "done"),
        Item("d", "already"),
        Item("e", "done"),
        Item("f", "done"),
    ]
    seen: list[str] = []
    outcomes = await actions.carry_out(items, settled(seen), limit=2, concurrency=2)
    assert [o.status for o in outcomes].count("done") == 2
    assert seen == ["a", "b", "c", "d", "e"]  # never more done than the limit, f not touched
    # What was done before is not printed again; what is skipped is, with its reason.
    assert capsys.readouterr().out.splitlines() == ["skipped: b", "done: c", "done: e"]
    assert await actions.carry_out(items, settled([]), limit=0) == []


async def test_a_blob_that_moves_under_an_action_skips_it_with_the_reason() -> None:
    async def settle(item: Item) -> actions.Outcome:
        raise {"a": BlobChangedError, "b": BlobMissingError, "c": BlobExistsError}[item.name]()

    outcomes = await actions.carry_out([Item(n, "done") for n in "abc"], settle)
    assert [o.line for o in outcomes] == [
        "skipped a: changed since it was judged; left alone",
        "skipped b: gone (moved or deleted since it was judged)",
        "skipped c: another blob is where it would go now; left alone",
    ]
    assert actions._exit_code(outcomes) == 1


def test_the_summary_counts_done_done_before_and_skipped() -> None:
    outcomes = [
        actions.Outcome("done", "", 100),
        actions.Outcome("done", "", 50),
        actions.Outcome("already", ""),
        actions.Outcome("skipped", ""),
    ]
    assert actions.summary(outcomes, 2, "duplicates", "moved", apply=True) == (
        "2 duplicates (150 bytes) moved; 1 done by an earlier run, 3 skipped"
    )
    assert actions.summary(outcomes, 0, "blobs", "restored", apply=False) == (
        "dry run: 2 blobs (150 bytes) would be restored; 1 done by an earlier run, "
        "1 skipped; add --apply to do it"
    )


def quarantined(name: str, **metadata: str) -> BlobInfo:
    return BlobInfo(name, 7, '"0x1"', "image/jpeg", 0.0, metadata)


def test_a_restore_puts_back_only_what_a_quarantine_moved_there() -> None:
    (action,), _ = actions.plan([KEPT, dup("a", blob_name="2024/ünï <x>.jpg")], "quarantine", "q")
    assert action.target is not None
    moved = quarantined(action.target[1], **({"owner": "ann"} | action.metadata))
    stray = quarantined("uploads/stray.jpg", owner="bob")
    renamed = quarantined("uploads/other.jpg", **action.metadata)
    restores, skips = actions.plan_restore("q", [moved, stray, renamed])
    (r,) = restores
    assert (r.name, r.source, r.e_tag, r.metadata) == (
        "q/uploads/2024/ünï <x>.jpg",
        ("uploads", "2024/ünï <x>.jpg"),
        '"0x1"',
        {"owner": "ann"},  # its own metadata; the quarantine's is taken off
    )
    assert [s.name for s in skips] == ["q/uploads/stray.jpg", "q/uploads/other.jpg"]
    assert all("not moved there by dedup act" in s.reason for s in skips)


def test_quarantine_without_a_container_is_refused() -> None:
    with pytest.raises(ValueError, match="container"):
        actions.plan([KEPT], "quarantine")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--apply"],
        ["--tag", "--quarantine", "q"],
        ["--restore", "q", "--tag"],
        ["--tag", "--limit", "-1"],
    ],
)
def test_the_command_needs_exactly_one_action(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        actions.main(argv)
    assert exit_.value.code == 2


@pytest.mark.parametrize("argv", [["--restore", "Quarantine_1"], ["--quarantine", "q"]])
def test_a_container_name_azure_would_refuse_is_refused_first(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        actions.main(argv)
    assert exit_.value.code == 2
    assert f"{argv[1]!r} is not an Azure blob container name" in capsys.readouterr().err


def test_the_dry_run_describes_each_action() -> None:
    (tag,), _ = actions.plan([KEPT, dup("a")], "tag")
    (move,), _ = actions.plan([KEPT, dup("a")], "quarantine", "q")
    assert actions.describe(tag, "tag") == (
        "tag uploads/a.jpg: dedup-duplicate-of=k, dedup-cluster=c"
    )
    assert actions.describe(move, "quarantine") == (
        "move uploads/a.jpg -> q/uploads/a.jpg (duplicate of uploads/k.jpg)"
    )
