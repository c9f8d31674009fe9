"""Pairwise metrics and clustering shared by the benchmarks (bench/eval.py,
bench/scan_cost.py): labels, precision/recall/F1 over pairs, the best-copy check, and
union-find clustering of hashes within a Hamming threshold. numpy only, so that a
measured peer process can import it without the pipeline.

See bench/eval.py's docstring for how the metrics count.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

TARGET_F1, TARGET_PRECISION = 0.95, 0.99


@dataclass(frozen=True)
class Label:
    file: str
    group: str
    family: str
    relation: str
    width: int
    height: int
    md5: str


def read_labels(folder: Path) -> dict[str, Label]:
    with (folder / "groups.csv").open(newline="") as fh:
        return {
            row["file"]: Label(
                file=row["file"],
                group=row["group"],
                family=row["family"],
                relation=row["relation"],
                width=int(row["width"] or 0),
                height=int(row["height"] or 0),
                md5=row["md5"],
            )
            for row in csv.DictReader(fh)
        }


# ---- metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One method on one set."""

    method: str
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    kept_best: int
    kept_groups: int
    seconds: float
    undecodable: int = 0  # labelled undecodable
    reported: int = 0  # of those, reported unreadable by the method

    @property
    def precision(self) -> float | None:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else None

    @property
    def recall(self) -> float | None:
        return self.correct_pairs / self.true_pairs if self.true_pairs else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if r is None:
            return None
        p = 1.0 if p is None else p  # no pair predicted: nothing wrong, nothing found
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_pairs(self) -> int:
        return self.predicted_pairs - self.correct_pairs

    def meets_target(self) -> bool:
        p = 1.0 if self.precision is None else self.precision
        return p >= TARGET_PRECISION and (self.f1 is None or self.f1 >= TARGET_F1)


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_counts(predicted: Mapping[str, str], truth: Mapping[str, str]) -> tuple[int, int, int]:
    """(true pairs, predicted pairs, pairs in both) over the files of `truth`."""
    files = list(truth)
    cells = Counter((predicted[f], truth[f]) for f in files)
    return (
        sum(pairs(n) for n in Counter(truth[f] for f in files).values()),
        sum(pairs(n) for n in Counter(predicted[f] for f in files).values()),
        sum(pairs(n) for n in cells.values()),
    )


def is_original(relation: str) -> bool:
    return relation.lower().startswith(("original", "rgba original"))


def best_files(labels: Mapping[str, Label]) -> dict[str, set[str]]:
    """group -> its best copies (see the module docstring)."""
    members: dict[str, list[Label]] = defaultdict(list)
    for label in labels.values():
        members[label.group].append(label)
    best = {}
    for group, files in members.items():
        originals = {x.md5 for x in files if is_original(x.relation)}
        if originals:
            best[group] = {x.file for x in files if x.md5 in originals}
        else:
            most = max(x.width * x.height for x in files)
            best[group] = {x.file for x in files if x.width * x.height == most}
    return best


def kept_best(
    predicted: Mapping[str, str], kept: Mapping[str, str], labels: Mapping[str, Label]
) -> tuple[int, int]:
    """(groups whose kept copy is a best one, groups with two files or more together).

    `kept`: predicted cluster -> the file kept in it. A group's cluster is the one that
    holds most of its files (ties: the smallest cluster id)."""
    best = best_files(labels)
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for f, label in labels.items():
        by_group[label.group][predicted[f]] += 1
    hits = total = 0
    for group, clusters in by_group.items():
        cluster, n = min(clusters.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < 2:
            continue
        total += 1
        hits += kept.get(cluster) in best[group]
    return hits, total


def decodable(label: Label) -> bool:
    """The labels give no size for a file that is undecodable on purpose."""
    return label.width > 0 and label.height > 0


def outcome(
    method: str,
    predicted: Mapping[str, str],
    kept: Mapping[str, str],
    labels: Mapping[str, Label],
    seconds: float,
    unreadable: set[str],
) -> Outcome:
    """`unreadable`: the files the method reported it could not read."""
    judged = {f: x for f, x in labels.items() if decodable(x)}
    bad = set(labels) - set(judged)
    truth = {f: x.group for f, x in judged.items()}
    true_pairs, predicted_pairs, correct = pair_counts(predicted, truth)
    hits, groups = kept_best(predicted, kept, judged)
    return Outcome(
        method, true_pairs, predicted_pairs, correct, hits, groups, seconds,
        undecodable=len(bad), reported=len(bad & unreadable),
    )  # fmt: skip


# ---- clustering ----------------------------------------------------------------------

Bits = npt.NDArray[np.bool_]


class UnionFind:
    def __init__(self, items: Sequence[str]) -> None:
        self.parent = {x: x for x in items}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_within(hashes: Mapping[str, Bits | None], threshold: int) -> dict[str, str]:
    """file -> cluster (its smallest file): union-find over pairs within `threshold` bits."""
    uf = UnionFind(sorted(hashes))
    readable = sorted(f for f, h in hashes.items() if h is not None)
    for a, b in itertools.combinations(readable, 2):
        ha, hb = hashes[a], hashes[b]
        assert ha is not None and hb is not None
        if int(np.count_nonzero(ha != hb)) <= threshold:
            uf.union(a, b)
    return {f: uf.find(f) for f in hashes}
