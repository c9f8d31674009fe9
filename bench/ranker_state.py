"""The ranker's CPU with its state in memory (as `dedup scan` keeps it) and spilled to
SQLite (the service: cards and graph on disk), in the same run, rounds alternating.

A generated stream: image i's group links it to image i-1, DUPLICATE for one image in
three and REJECTED otherwise (a third of the images end up linked). *handle*: groups
per second of process CPU, fed one at a time after a rebuild; *rebuild*: decisions per
second of `Ranker.restore` from the stream's latest decisions (a start-up).

    python -m bench.ranker_state [--images 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.ranker.cards import SpilledCards
from services.ranker.graph import SpilledGraph
from services.ranker.handler import Ranker

# Groups handled after the rebuild, per round.
HANDLED = 5000


def image_id(i: int) -> str:
    return f"img-{i:08d}"


def linked_group(i: int) -> CandidateGroup:
    """Image i's group: image i-1 as its candidate (DUPLICATE one time in three)."""
    verdict = Verdict.VERDICT_DUPLICATE if i % 3 == 1 else Verdict.VERDICT_REJECTED
    me = image_id(i)
    group = CandidateGroup(
        image_id=me,
        image=ImageFeatures(image_id=me, status=ImageStatus.IMAGE_STATUS_OK, width=640,
                            height=480, size_bytes=50_000, quality=0.5, e_tag="e1"),
    )  # fmt: skip
    if i:
        group.candidates.append(
            Candidate(image_id=image_id(i - 1), verdict=verdict, decided_by="matcher",
                      scores=Scores(inliers=100, aligned_residual=0.01), quality=0.5)
        )  # fmt: skip
    return group


def latest_decisions(images: int) -> list[Decision]:
    latest: dict[str, Decision] = {}
    ranker = Ranker()
    for i in range(images):
        latest.update((d.image_id, d) for d in ranker.handle(linked_group(i)).decisions)
    return list(latest.values())


@contextmanager
def in_memory() -> Iterator[Ranker]:
    yield Ranker()


@contextmanager
def spilled() -> Iterator[Ranker]:
    with tempfile.TemporaryDirectory() as folder:
        cards = SpilledCards(folder, 4 * 1024 * 1024)  # the service's default
        try:
            yield Ranker(cards, SpilledGraph(cards.database))
        finally:
            cards.close()


def one_round(
    state: Callable[[], AbstractContextManager[Ranker]], decisions: list[Decision], images: int
) -> tuple[float, float]:
    """(decisions rebuilt per CPU second, groups handled per CPU second)."""
    with state() as ranker:
        started = time.process_time()
        ranker.restore(decisions)
        rebuilt = time.process_time() - started
        started = time.process_time()
        for i in range(images, images + HANDLED):
            ranker.handle(linked_group(i))
        handled = time.process_time() - started
    return len(decisions) / rebuilt, HANDLED / handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args(argv)
    print(f"$ python -m bench.ranker_state {' '.join(sys.argv[1:] if argv is None else argv)}")
    decisions = latest_decisions(ns.images)
    states = {"in memory": in_memory, "spilled": spilled}
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in states}
    for _ in range(ns.rounds):
        for name, state in states.items():
            rates[name].append(one_round(state, decisions, ns.images))
    print(f"{len(decisions)} decisions, then {HANDLED} groups; medians of {ns.rounds} rounds")
    print(f"{'state':10s} {'rebuild/s':>10s} {'handle/s':>9s}")
    medians = {
        name: (statistics.median(r for r, _ in runs), statistics.median(h for _, h in runs))
        for name, runs in rates.items()
    }
    for name, (rebuild, handle) in medians.items():
        print(f"{name:10s} {rebuild:10.0f} {handle:9.0f}")
    (mr, mh), (sr, sh) = medians["in memory"], medians["spilled"]
    print(f"spilled / in memory: rebuild {sr / mr:.2f}x, handle {sh / mh:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
