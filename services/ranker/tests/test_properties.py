"""Property tests: the clusters and the kept copies depend on the groups, nothing else.

Whatever the order of arrival, the redeliveries, the partitioning of the input topic and
the restarts (rebuilding from the compacted decisions), the last decision of every image
is the same, and it agrees with a plain union-find over the proven DUPLICATE edges.
"""

import tempfile
from collections.abc import Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.groups_pb2 import CandidateGroup, Verdict
from services.ranker.cards import SpilledCards
from services.ranker.graph import SpilledGraph
from services.ranker.handler import Ranker, card
from services.ranker.tests.helpers import (
    DUP,
    REJ,
    SIM,
    Img,
    Topic,
    deleted,
    group,
    reference_clusters,
    run,
    summary,
)

KEEP = DecisionKind.DECISION_KIND_KEEP
DUPLICATE = DecisionKind.DECISION_KIND_DUPLICATE
UNIQUE = DecisionKind.DECISION_KIND_UNIQUE
GONE = DecisionKind.DECISION_KIND_DELETED

PROPERTIES = settings(max_examples=150, deadline=None)


@dataclass(frozen=True)
class Scene:
    images: tuple[Img, ...]
    # (prover, other, verdict): `prover`'s group lists `other` with that verdict.
    proofs: tuple[tuple[str, str, "Verdict.ValueType"], ...]

    def groups(self) -> list[CandidateGroup]:
        by_id = {i.id: i for i in self.images}
        return [
            group(i, [(by_id[o], v) for p, o, v in self.proofs if p == i.id]) for i in self.images
        ]

    def duplicate_edges(self) -> list[tuple[str, str]]:
        return [(p, o) for p, o, v in self.proofs if v == DUP]


@st.composite
def scenes(draw: st.DrawFn, max_images: int = 9) -> Scene:
    n = draw(st.integers(2, max_images))
    # Few distinct values, so that ties in quality, pixels and size are common.
    images = tuple(
        Img(
            f"img{k:02d}",
            quality=draw(st.sampled_from([0.2, 0.5, 0.5, 0.9])),
            width=draw(st.sampled_from([100, 200])),
            size=draw(st.sampled_from([1000, 2000])),
        )
        for k in range(n)
    )
    proofs = []
    for a in range(n):
        for b in range(a + 1, n):
            verdict = draw(st.sampled_from([None, None, DUP, DUP, SIM, REJ]))
            if verdict is None:
                continue
            prover = draw(st.sampled_from(["first", "second", "both"]))
            x, y = images[a].id, images[b].id
            if prover in ("first", "both"):
                proofs.append((x, y, verdict))
            if prover in ("second", "both"):
                # The matcher may judge the pair differently from the other side.
                proofs.append((y, x, draw(st.sampled_from([verdict, DUP, SIM]))))
    return Scene(images, tuple(proofs))


def canonical(groups: Sequence[CandidateGroup]) -> dict[str, bytes]:
    return cards(run(sorted(groups, key=lambda g: g.image_id)))


def cards(topic: Topic) -> dict[str, bytes]:
    return {i: card(d) for i, d in topic.latest.items()}


def assert_agrees_with_union_find(topic: Topic, scene: Scene, gone: frozenset[str]) -> None:
    reference = reference_clusters(scene.images, scene.duplicate_edges(), gone)
    for image_id, (kind, cluster, kept) in summary(topic).items():
        if image_id in gone:
            assert kind == GONE
        elif image_id in reference:
            ref_cluster, ref_kept = reference[image_id]
            assert cluster == ref_cluster
            assert kind == (KEEP if image_id == ref_kept else DUPLICATE)
            assert kept == ("" if image_id == ref_kept else ref_kept)
        else:
            assert (kind, cluster, kept) == (UNIQUE, "", "")


@PROPERTIES
@given(scene=scenes(), data=st.data())
def test_any_order_with_any_redelivery_and_restarts_gives_the_same_decisions(
    scene: Scene, data: st.DataObject
) -> None:
    groups = scene.groups()
    stream = list(data.draw(st.permutations(groups), label="order"))
    again = data.draw(
        st.lists(st.tuples(st.sampled_from(groups), st.integers(0, len(stream))), max_size=8),
        label="redelivered (group, position)",
    )
    for g, position in sorted(again, key=lambda item: -item[1]):
        stream.insert(position, g)
    restarts = data.draw(st.frozensets(st.integers(0, len(stream) - 1), max_size=3))
    topic = run(stream, restarts)
    assert cards(topic) == canonical(groups)
    assert_agrees_with_union_find(topic, scene, frozenset())


@PROPERTIES
@given(scene=scenes(), data=st.data())
def test_any_partitioning_interleaving_and_replay_gives_the_same_decisions(
    scene: Scene, data: st.DataObject
) -> None:
    """Partitions keep per-key order; a crash replays a partition from its last commit."""
    gone = frozenset(data.draw(st.sets(st.sampled_from([i.id for i in scene.images]))))
    by_id = {g.image_id: g for g in scene.groups()}
    events = list(by_id.values()) + [deleted(i) for i in scene.images if i.id in gone]
    n_partitions = data.draw(st.integers(1, 4), label="partitions")
    partitions: list[list[CandidateGroup]] = [[] for _ in range(n_partitions)]
    partition_of = {
        i.id: data.draw(st.integers(0, n_partitions - 1), label=f"partition of {i.id}")
        for i in scene.images
    }
    for e in events:  # a BlobDeleted follows its BlobCreated on the image's partition
        partitions[partition_of[e.image_id]].append(e)
    streams = []
    for part in partitions:
        crash = data.draw(st.integers(0, len(part)))
        committed = data.draw(st.integers(0, crash))
        streams.append(part[:crash] + part[committed:])
    stream: list[CandidateGroup] = []
    while any(streams):
        pick = data.draw(st.sampled_from([k for k, s in enumerate(streams) if s]))
        stream.append(streams[pick].pop(0))
    restarts = data.draw(st.frozensets(st.integers(0, len(stream) - 1), max_size=2))
    topic = run(stream, restarts)
    in_order = sorted(by_id.values(), key=lambda g: g.image_id)
    assert cards(topic) == cards(run(in_order + [deleted(i) for i in scene.images if i.id in gone]))
    assert_agrees_with_union_find(topic, scene, gone)


@PROPERTIES
@given(scene=scenes(), data=st.data())
def test_deleting_the_kept_copy_elects_the_next_best(scene: Scene, data: st.DataObject) -> None:
    groups = scene.groups()
    kept = sorted({d.image_id for d in run(groups).latest.values() if d.kind == KEEP})
    if not kept:
        return
    victim = data.draw(st.sampled_from(kept))
    order = list(data.draw(st.permutations(groups)))
    topic = run([*order, deleted(next(i for i in scene.images if i.id == victim))])
    assert topic.latest[victim].kind == GONE
    assert victim not in {d.duplicate_of for d in topic.latest.values()}
    assert_agrees_with_union_find(topic, scene, frozenset({victim}))


@PROPERTIES
@given(scene=scenes(), data=st.data())
def test_a_ranker_spilled_to_disk_decides_as_one_in_memory(
    scene: Scene, data: st.DataObject
) -> None:
    """The service's cards and graph in SQLite (every card but the newest out of memory)
    against dicts: the same decisions after every group, restarts from the topic too."""
    groups = scene.groups()
    stream = list(data.draw(st.permutations(groups), label="order"))
    stream += data.draw(st.lists(st.sampled_from(groups), max_size=4), label="redelivered")
    gone = data.draw(st.sets(st.sampled_from(list(scene.images)), max_size=2), label="deleted")
    stream += [deleted(i) for i in sorted(gone, key=lambda i: i.id)]
    stream += data.draw(st.lists(st.sampled_from(groups), max_size=2), label="uploaded again")
    restarts = data.draw(st.frozensets(st.integers(0, len(stream) - 1), max_size=2))
    with tempfile.TemporaryDirectory() as folder, ExitStack() as files:

        def spilled(topic: Topic) -> Ranker:
            cards = files.enter_context(closing(SpilledCards(folder, max_bytes=16)))
            ranker = Ranker(cards, SpilledGraph(cards.database))
            assert ranker.restore(topic.latest.values()).decisions == []
            return ranker

        topic = Topic()
        memory, disk = Ranker(), spilled(topic)
        for i, g in enumerate(stream):
            if i in restarts:
                memory, disk = topic.restart(), spilled(topic)
            outcome = topic.publish(memory.handle(g))
            assert disk.handle(g) == outcome
        assert disk.linked == memory.linked
