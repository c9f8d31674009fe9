"""Groups as the matcher publishes them, and a reference clustering to check against."""

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dedup.v1.decisions_pb2 import Decision
from dedup.v1.events_pb2 import BlobEvent, BlobEventData
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.ranker.handler import Outcome, Ranker, rank_key
from services.ranker.provenance import derives, keeper

DUP = Verdict.VERDICT_DUPLICATE
SIM = Verdict.VERDICT_SIMILAR
REJ = Verdict.VERDICT_REJECTED


@dataclass(frozen=True)
class Img:
    id: str
    quality: float = 0.5
    width: int = 100
    height: int = 100
    size: int = 1000


def group(
    img: Img,
    candidates: Sequence[tuple[Img, "Verdict.ValueType"]] = (),
    *,
    status: "ImageStatus.ValueType" = ImageStatus.IMAGE_STATUS_OK,
    reason: str = "",
    e_tag: str = "etag-1",
) -> CandidateGroup:
    """The matcher's output for `img`, with `candidates` judged as given."""
    return CandidateGroup(
        image_id=img.id,
        image=ImageFeatures(
            image_id=img.id,
            blob_url=f"http://blob/uploads/{img.id}.jpg",
            status=status,
            reason=reason,
            width=img.width,
            height=img.height,
            size_bytes=img.size,
            quality=img.quality,
            e_tag=e_tag,
            working_copy_url=f"http://blob/derived/{img.id}.jpg",
        ),
        event=BlobEvent(
            image_id=img.id,
            container="uploads",
            blob_name=f"{img.id}.jpg",
            data=BlobEventData(url=f"http://blob/uploads/{img.id}.jpg"),
        ),
        candidates=[
            Candidate(
                image_id=c.id,
                blob_url=f"http://blob/uploads/{c.id}.jpg",
                verdict=verdict,
                decided_by="matcher",
                reason=f"{img.id}~{c.id}",
                scores=Scores(inliers=len(img.id + c.id), aligned_residual=0.01),
                quality=c.quality,
                working_copy_url=f"http://blob/derived/{c.id}.jpg",
            )
            for c, verdict in candidates
        ],
        stages=["hasher", "verifier", "embedder", "matcher"],
    )


def deleted(img: Img) -> CandidateGroup:
    return CandidateGroup(
        image_id=img.id,
        image=ImageFeatures(image_id=img.id, status=ImageStatus.IMAGE_STATUS_DELETED),
        event=BlobEvent(image_id=img.id, container="uploads", blob_name=f"{img.id}.jpg"),
    )


class Topic:
    """A compacted decisions topic: the latest decision of every image."""

    def __init__(self) -> None:
        self.latest: dict[str, Decision] = {}

    def publish(self, outcome: Outcome) -> Outcome:
        for d in outcome.decisions:
            self.latest[d.image_id] = d
        return outcome

    def restart(self) -> Ranker:
        ranker = Ranker()
        ranker.restore(self.latest.values())
        return ranker


def run(groups: Iterable[CandidateGroup], restart_at: frozenset[int] = frozenset()) -> Topic:
    """Feed groups to a ranker, restarting it from the topic before the given positions."""
    topic, ranker = Topic(), Ranker()
    for i, g in enumerate(groups):
        if i in restart_at:
            ranker = topic.restart()
        topic.publish(ranker.handle(g))
    return topic


def summary(topic: Topic) -> dict[str, tuple[int, str, str]]:
    """image -> (kind, cluster id, kept copy)."""
    return {i: (d.kind, d.cluster_id, d.duplicate_of) for i, d in sorted(topic.latest.items())}


def described(img: Img) -> Decision:
    """What the ranker knows of `img` once its own group has arrived."""
    return Decision(
        image_id=img.id,
        quality=img.quality,
        width=img.width,
        height=img.height,
        size_bytes=img.size,
        status=ImageStatus.IMAGE_STATUS_OK,
    )


def reference_clusters(
    images: Sequence[Img], edges: Iterable[tuple[str, str]], gone: Iterable[str] = ()
) -> dict[str, tuple[str, str]]:
    """image -> (cluster id, kept copy) by plain union-find, for images in a cluster; the
    kept copy by the provenance rules over every pair (services/ranker/provenance.py)."""
    alive = {i.id: i for i in images if i.id not in set(gone)}
    parent = {i: i for i in alive}

    def find(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in edges:
        if a in alive and b in alive:
            parent[find(a)] = find(b)
    members: dict[str, list[str]] = {}
    for i in alive:
        members.setdefault(find(i), []).append(i)
    result: dict[str, tuple[str, str]] = {}
    for ids in members.values():
        if len(ids) < 2:
            continue
        cards = {i: described(alive[i]) for i in ids}
        derived = {}
        for a, b in itertools.combinations(sorted(ids), 2):
            # Every pair; the groups' scores carry no pixel evidence, so only the images'
            # own features (their sizes) can direct one, proved or not.
            how_a, how_b = derives(cards[a], cards[b], Scores())
            if how_a:
                derived[a, b] = how_a
            elif how_b:
                derived[b, a] = how_b
        kept = keeper(cards, derived, rank_key)
        result |= {i: (min(ids), kept) for i in ids}
    return result
