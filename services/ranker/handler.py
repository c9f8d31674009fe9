"""The ranker's pure core: duplicate clusters over proven edges, the kept copy, decisions.

The model is a graph. Its edges are the relations each image's own group proved: a
candidate the matcher judged DUPLICATE links two images into one cluster, one judged
SIMILAR (another shot of the same scene) is only reported, never merged; REJECTED and
PENDING candidates are ignored. An edge exists while either endpoint's latest group
proves it. A cluster is a connected component of DUPLICATE edges over the *active*
images (read, or known only as someone's candidate so far); unreadable and deleted
images are never in a cluster.

Everything a decision says is a function of that graph and of each image's own
features, never of the order things arrived in:
- cluster id: the smallest image id of the cluster;
- kept copy: of the copies that derive from no other by the images' own features
  (services/ranker/provenance.py, every pair of the cluster), the highest quality, then
  more pixels, the larger file, the smallest image id;
- evidence of a duplicate: the edge towards the kept copy on the breadth-first tree
  from the kept copy (neighbours visited in id order).
Redelivering a group replaces that image's edges with the same edges, so it changes
nothing. A deleted image drops every edge it has and refuses new ones while it stays
deleted (a later BlobCreated revives it), so a deletion and a late group proving an
edge to the deleted image commute.

State per image is the decision last published for it (serialised, without its time:
its card, kept where `cards.py` says), which carries the image's own links: exactly what
the compacted decisions topic holds, so `restore` rebuilds the same graph (kept where
`graph.py` says) after a restart. Only images with links are in the graph.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dedup.errors import InvalidMessageError
from dedup.v1.decisions_pb2 import Decision, DecisionKind, Link
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.ranker.cards import Cards
from services.ranker.graph import Graph, MemoryGraph
from services.ranker.provenance import choosing, contenders, derives, keeper, kept_reason

# Clusters up to this size compare every pair of copies for the kept copy (the pairs
# grow with the square); larger ones keep their best quality.
ALL_PAIRS = 64

OK = ImageStatus.IMAGE_STATUS_OK
UNSEEN = ImageStatus.IMAGE_STATUS_UNSPECIFIED  # known only as a candidate of another image
DELETED = ImageStatus.IMAGE_STATUS_DELETED
DUPLICATE = Verdict.VERDICT_DUPLICATE
SIMILAR = Verdict.VERDICT_SIMILAR

KEEP = DecisionKind.DECISION_KIND_KEEP
DUPLICATE_OF = DecisionKind.DECISION_KIND_DUPLICATE
UNIQUE = DecisionKind.DECISION_KIND_UNIQUE
UNREADABLE = DecisionKind.DECISION_KIND_UNREADABLE
GONE = DecisionKind.DECISION_KIND_DELETED
UNIQUE_REASON = "no duplicate found"

# Fields the ranker computes; everything else on a decision describes the image.
Computed = Literal[
    "kind", "cluster_id", "duplicate_of", "evidence", "similar", "links", "decided_at"
]
COMPUTED: tuple[Computed, ...] = (
    "kind",
    "cluster_id",
    "duplicate_of",
    "evidence",
    "similar",
    "links",
    "decided_at",
)


@dataclass
class Outcome:
    """What one group changed: the decisions to publish and what metrics want to know."""

    decisions: list[Decision] = field(default_factory=list)
    # Size of every duplicate cluster re-decided (2 or more images).
    cluster_sizes: list[int] = field(default_factory=list)
    # Images whose decision became DUPLICATE now (they were not one before).
    new_duplicates: int = 0


def rank_key(d: Decision) -> tuple[float, int, int, str]:
    """Sort key whose smallest element is the copy to keep."""
    quality = d.quality if not math.isnan(d.quality) else -math.inf
    return (-quality, -(d.width * d.height), -d.size_bytes, d.image_id)


def links_of(group: CandidateGroup) -> list[Link]:
    """The DUPLICATE and SIMILAR relations a group proves, one per candidate, by id."""
    best: dict[str, Link] = {}
    for c in group.candidates:
        if c.verdict not in (DUPLICATE, SIMILAR) or not c.image_id or c.image_id == group.image_id:
            continue
        if c.image_id in best and best[c.image_id].verdict == DUPLICATE:
            continue  # a candidate listed twice: DUPLICATE wins, then the first one
        if c.image_id in best and c.verdict != DUPLICATE:
            continue
        best[c.image_id] = Link(
            image_id=c.image_id, verdict=c.verdict, scores=c.scores, reason=_why(c)
        )
    return [best[k] for k in sorted(best)]


def _why(c: Candidate) -> str:
    """e.g. "matcher (aligned-residual): ...": the stage, the test that decided, the reason."""
    who = f"{c.decided_by} ({c.test})" if c.decided_by and c.test else c.decided_by
    return ": ".join(part for part in (who, c.reason) if part)


def describe(group: CandidateGroup) -> Decision:
    """The descriptive part of an image's decision, from its own group."""
    image, event = group.image, group.event
    status = image.status or OK
    return Decision(
        image_id=group.image_id,
        blob_url=image.blob_url or event.data.url,
        container=event.container,
        blob_name=event.blob_name,
        working_copy_url=image.working_copy_url,
        width=image.width,
        height=image.height,
        size_bytes=image.size_bytes or event.data.content_length,
        quality=image.quality,
        status=status,
        reason=image.reason,
        e_tag=image.e_tag or event.data.e_tag,
        format=image.format,
        greyscale=image.greyscale,
        quality_parts=image.quality_parts,
        marks=image.marks,
        written_at=event.event_time if event.HasField("event_time") else None,
    )


def unseen(c: Candidate) -> Decision:
    """What a candidate tells of an image whose own group has not reached the ranker yet."""
    return Decision(
        image_id=c.image_id,
        blob_url=c.blob_url,
        working_copy_url=c.working_copy_url,
        quality=c.quality,
        greyscale=c.greyscale,
        status=UNSEEN,
    )


def card(decision: Decision) -> bytes:
    """A decision as the ranker remembers it: serialised, without the time it was made."""
    copy = Decision()
    copy.CopyFrom(decision)
    copy.ClearField("decided_at")
    return copy.SerializeToString(deterministic=True)


def bare(etag: str) -> str:
    """An ETag without its quotes: Event Grid sends `0x8D..`, a listing `"0x8D.."`."""
    return etag.strip('"')


def packed(links: Iterable[Link]) -> bytes:
    """An image's own links as the ranker keeps them: serialised, a fraction of what a
    parsed Link kept holds (an arena of its own; the README's "Memory and start-up
    time")."""
    return Decision(links=links).SerializeToString(deterministic=True)


def is_active(d: Decision) -> bool:
    return d.status in (OK, UNSEEN)


class Ranker:
    """The only writer of cluster membership; see the module docstring."""

    def __init__(self, cards: Cards | None = None, graph: Graph | None = None) -> None:
        """`cards`: where each image's card is kept, `graph` its links and the edges
        they make (the service: `SpilledCards` and `SpilledGraph`, on disk with the
        recent cards in memory); all in memory by default."""
        in_memory: dict[str, bytes] = {}
        self._cards: Cards = in_memory if cards is None else cards
        # Images that are never in a cluster: unreadable or deleted (a small set).
        self._inactive: set[str] = set()
        self._deleted: set[str] = set()
        # Links proved by each image's own group (`packed`) and the undirected edges
        # built from every image's links (only images that have any).
        self._graph: Graph = MemoryGraph() if graph is None else graph

    def __len__(self) -> int:
        return len(self._cards)

    @property
    def cards(self) -> Cards:
        return self._cards

    @property
    def linked(self) -> int:
        """Images with at least one DUPLICATE or SIMILAR edge."""
        return self._graph.linked()

    def decision(self, image_id: str) -> Decision | None:
        """The decision last published for an image (without its time)."""
        data = self._cards.get(image_id)
        return Decision.FromString(data) if data is not None else None

    # --- restart ---------------------------------------------------------------------

    def restore(self, decisions: Iterable[Decision]) -> Outcome:
        """Rebuild from the latest decision of every image (the compacted topic).

        Returns the decisions to publish again where a crash left the topic half-written
        (one image's decision landed, a neighbour's did not): the images around a link
        to a since-deleted image, or to an image with no decision at all.
        """
        for d in decisions:
            self.take(d)
        return self.repair()

    def take(self, d: Decision) -> None:
        """One decision of the topic, read in its order (a later one of the same image
        replaces an earlier): `restore` one at a time; `repair` once all are in."""
        self._remember(d)
        self._graph.set_own(d.image_id, packed(d.links) if d.links else None)

    def forget(self, image_id: str) -> None:
        """A tombstone of the topic: the image's decision was removed on purpose."""
        self._cards.pop(image_id, None)
        self._inactive.discard(image_id)
        self._deleted.discard(image_id)
        self._graph.set_own(image_id, None)

    def repair(self) -> Outcome:
        """Once every decision is in (`take`): the adjacency, and what to republish."""
        repair: set[str] = set()
        for source in self._graph.sources():
            links = self._own(source)
            for link in links:
                target = link.image_id
                if target not in self._cards:
                    self._remember(Decision(image_id=target, status=UNSEEN))
                    repair |= {source, target}
            kept = [k for k in links if k.image_id not in self._deleted]
            if len(kept) != len(links):
                repair |= {source} | {k.image_id for k in links}
            self._set_links(source, kept)
        return self._decide(self._region(repair)) if repair else Outcome()

    # --- one group ---------------------------------------------------------------------

    def handle(self, group: CandidateGroup) -> Outcome:
        """Take in one image's group; return the decisions that changed (its own always)."""
        x = group.image_id
        if not x:
            raise InvalidMessageError("CandidateGroup without image_id")
        incoming = [] if group.image.status not in (UNSEEN, OK) else links_of(group)
        seeds = {x} | self._neighbours(x) | {k.image_id for k in incoming}
        before = self._region(seeds)
        self._absorb(group, incoming)
        return self._decide(before | self._region(seeds), always=x)

    def _absorb(self, group: CandidateGroup, incoming: Sequence[Link]) -> None:
        x = group.image_id
        old = self.decision(x)
        new = describe(group)
        if new.status == DELETED:
            if old is not None:  # keep what we knew of the blob, for the report
                old.status, old.reason = DELETED, new.reason or "blob deleted"
                old.ClearField("working_copy_url")  # the hasher deletes the working copy
                new = old
            elif not new.reason:
                new.reason = "blob deleted"
            self._cut(x)
            self._remember(new)
            return
        if old is not None and old.e_tag and new.e_tag and bare(old.e_tag) != bare(new.e_tag):
            # New content under the same name: what others proved about the old is void.
            self._cut(x)
        self._remember(new)
        for c in group.candidates:
            if c.image_id not in self._cards and any(k.image_id == c.image_id for k in incoming):
                self._remember(unseen(c))
        self._set_links(x, [k for k in incoming if k.image_id not in self._deleted])

    def _remember(self, d: Decision) -> None:
        self._cards[d.image_id] = card(d)
        if is_active(d):
            self._inactive.discard(d.image_id)
        else:
            self._inactive.add(d.image_id)
        if d.status == DELETED:
            self._deleted.add(d.image_id)
        else:
            self._deleted.discard(d.image_id)

    # --- the graph ---------------------------------------------------------------------

    def _own(self, image_id: str) -> tuple[Link, ...]:
        data = self._graph.own(image_id)
        return () if data is None else tuple(Decision.FromString(data).links)

    def _neighbours(self, image_id: str) -> set[str]:
        return self._graph.neighbours(image_id, DUPLICATE) | self._graph.neighbours(
            image_id, SIMILAR
        )

    def _set_links(self, source: str, links: Sequence[Link]) -> None:
        """Replace the links `source` proved, and the adjacency that follows from them."""
        old = self._own(source)
        self._graph.set_own(
            source, packed(sorted(links, key=lambda k: k.image_id)) if links else None
        )
        for target in {k.image_id for k in old} | {k.image_id for k in links}:
            self._refresh_edge(source, target)

    def _refresh_edge(self, a: str, b: str) -> None:
        verdicts = {k.verdict for k in self._own(a) if k.image_id == b}
        verdicts |= {k.verdict for k in self._own(b) if k.image_id == a}
        for verdict in (DUPLICATE, SIMILAR):
            if verdict in verdicts:
                self._graph.add_edge(a, b, verdict)
            else:
                self._graph.remove_edge(a, b, verdict)

    def _cut(self, x: str) -> None:
        """Drop every edge of `x`: its own links and the links others proved to it."""
        neighbours = self._neighbours(x)
        self._set_links(x, ())
        for n in neighbours:
            self._set_links(n, [k for k in self._own(n) if k.image_id != x])

    def _component(self, start: str) -> set[str]:
        """The cluster of an active image: DUPLICATE edges over active images."""
        seen, todo = {start}, [start]
        while todo:
            for n in self._graph.neighbours(todo.pop(), DUPLICATE):
                if n not in seen and n not in self._inactive:
                    seen.add(n)
                    todo.append(n)
        return seen

    def _region(self, seeds: Iterable[str]) -> set[str]:
        """The seeds and the clusters of those that are active."""
        region: set[str] = set()
        for s in seeds:
            if s in region or s not in self._cards:
                continue
            region |= {s} if s in self._inactive else self._component(s)
        return region

    def _evidence(self, a: str, b: str) -> tuple[str, Link]:
        """The DUPLICATE link between a and b and whose it is: the smaller id's own if it
        has one, else the other's."""
        for source, target in sorted(((a, b), (b, a))):
            for k in self._own(source):
                if k.image_id == target and k.verdict == DUPLICATE:
                    return source, k
        raise AssertionError(f"no DUPLICATE edge between {a} and {b}")

    def _relations(self, members: dict[str, Decision]) -> dict[tuple[str, str], str]:
        """(child, parent) -> how, for every pair of the cluster that the evidence the
        choice may use directs (services/ranker/provenance.py: the images' own features,
        and a crop where the pair was proved). None for a cluster of more than ALL_PAIRS
        images (its best quality is kept)."""
        if len(members) > ALL_PAIRS:
            return {}
        found = {}
        for a, b in itertools.combinations(sorted(members), 2):
            if self._graph.has_edge(a, b, DUPLICATE):
                source, link = self._evidence(a, b)
                scores = choosing(link.scores)
            else:
                source, scores = a, Scores()
            target = b if source == a else a
            how_source, how_target = derives(members[source], members[target], scores)
            if how_source:
                found[source, target] = how_source
            elif how_target:
                found[target, source] = how_target
        return found

    def _proved_how(self, node: str, kept: str, members: dict[str, Decision]) -> str | None:
        """How `node` derives from `kept` by their whole proof, if they have one: its
        pixels also tell an overlay (for the words only)."""
        if not self._graph.has_edge(node, kept, DUPLICATE):
            return None
        source, link = self._evidence(node, kept)
        target = kept if source == node else node
        how_source, how_target = derives(members[source], members[target], link.scores)
        return how_source if source == node else how_target

    # --- decisions ---------------------------------------------------------------------

    def _decide(self, affected: set[str], always: str | None = None) -> Outcome:
        outcome = Outcome()
        views = {i: Decision.FromString(self._cards[i]) for i in affected}
        done: set[str] = set()
        for i in sorted(affected):
            if i in done:
                continue
            cluster = {i} if i in self._inactive else self._component(i)
            done |= cluster
            decided = self._decide_cluster(cluster, views)
            if len(cluster) > 1:
                outcome.cluster_sizes.append(len(cluster))
            for d in decided:
                before = views[d.image_id]
                if before.kind != DUPLICATE_OF and d.kind == DUPLICATE_OF:
                    outcome.new_duplicates += 1
                data = card(d)
                if data != self._cards[d.image_id] or d.image_id == always:
                    self._cards[d.image_id] = data
                    outcome.decisions.append(d)
        return outcome

    def _decide_cluster(self, cluster: set[str], views: dict[str, Decision]) -> list[Decision]:
        members = {i: views[i] for i in cluster}
        if len(members) == 1:
            (only,) = members.values()
            kind = UNIQUE if is_active(only) else GONE if only.status == DELETED else UNREADABLE
            alone = self._fill(only, kind, cluster)
            if kind == UNIQUE:  # every decision says why, a unique one too
                alone.reason = UNIQUE_REASON
            return [alone]
        derived = self._relations(members)
        tied = contenders(members, derived, rank_key)
        kept = keeper(members, derived, rank_key)
        by_time = len(tied) if kept != min(tied, key=lambda m: rank_key(members[m])) else 0
        cluster_id = min(cluster)
        hows = {
            n: self._proved_how(n, kept, members) or derived.get((n, kept))
            for n in sorted(cluster - {kept})
        }
        out = [self._fill(members[kept], KEEP, cluster, cluster_id=cluster_id)]
        out[0].reason = kept_reason([h for h in hows.values() if h], len(cluster), by_time)
        for node, parent in self._tree(kept, cluster):
            _, link = self._evidence(node, parent)
            d = self._fill(members[node], DUPLICATE_OF, cluster, cluster_id=cluster_id)
            d.duplicate_of = kept
            d.evidence.CopyFrom(link.scores)
            how = hows[node]
            proof = link.reason if parent == kept else f"via {parent}: {link.reason}"
            d.reason = f"{how} of the kept copy; {proof}" if how else proof
            out.append(d)
        return out

    def _tree(self, root: str, cluster: set[str]) -> list[tuple[str, str]]:
        """(node, parent) of a breadth-first tree over the cluster, neighbours in id order."""
        pairs, seen, queue = [], {root}, deque([root])
        while queue:
            parent = queue.popleft()
            for n in sorted(self._graph.neighbours(parent, DUPLICATE) & cluster):
                if n not in seen:
                    seen.add(n)
                    pairs.append((n, parent))
                    queue.append(n)
        return pairs

    def _fill(
        self, view: Decision, kind: DecisionKind.ValueType, cluster: set[str], cluster_id: str = ""
    ) -> Decision:
        d = Decision()
        d.CopyFrom(view)
        for name in COMPUTED:
            d.ClearField(name)
        d.kind = kind
        d.cluster_id = cluster_id
        if kind in (KEEP, DUPLICATE_OF, UNIQUE):
            d.reason = ""
        similar = self._graph.neighbours(d.image_id, SIMILAR) - cluster - self._inactive
        d.similar.extend(sorted(similar))
        d.links.extend(self._own(d.image_id))
        return d
