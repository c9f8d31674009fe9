"""bench/eval.py's metrics on hand-made cases (no servers, no data sets)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("imagehash")
pytest.importorskip("pdqhash")

from bench.eval import write_generated_set
from bench.metrics import (
    Label,
    best_files,
    cluster_within,
    kept_best,
    outcome,
    pair_counts,
    read_labels,
)


def label(file: str, group: str, relation: str = "edit", size: int = 10, md5: str = "") -> Label:
    return Label(file, group, group, relation, size, size, md5 or file)


def test_pairs_are_counted_over_the_labelled_files() -> None:
    truth = {"a": "g1", "b": "g1", "c": "g1", "d": "g2", "e": "g3"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z", "unlabelled": "x"}
    # True pairs: ab ac bc. Predicted: ab, cd. Correct: ab.
    assert pair_counts(predicted, truth) == (3, 2, 1)


def test_precision_recall_f1_and_undecodable_files() -> None:
    labels = {
        "o.jpg": label("o.jpg", "g", "original"),
        "e.jpg": label("e.jpg", "g"),
        "bad.jpg": Label("bad.jpg", "g", "g", "corrupt", 0, 0, "m"),
        "u.jpg": label("u.jpg", "u"),
    }
    predicted = {"o.jpg": "1", "e.jpg": "1", "bad.jpg": "2", "u.jpg": "1"}
    o = outcome("x", predicted, {"1": "o.jpg", "2": "bad.jpg"}, labels, 1.0, {"bad.jpg"})
    assert (o.true_pairs, o.predicted_pairs, o.correct_pairs) == (1, 3, 1)
    assert o.precision == pytest.approx(1 / 3) and o.recall == 1.0
    assert o.f1 == pytest.approx(0.5)
    assert (o.undecodable, o.reported) == (1, 1)
    assert (o.kept_best, o.kept_groups) == (1, 1)
    assert not o.meets_target()
    alone = outcome("x", {f: f for f in labels}, {}, labels, 1.0, set())
    assert alone.precision is None and alone.recall == 0.0 and alone.f1 == 0.0


def test_the_best_copy_is_the_original_or_else_the_largest() -> None:
    labels = {
        "o.jpg": label("o.jpg", "g", "original", md5="m1"),
        "same.png": label("same.png", "g", "same bytes", md5="m1"),
        "big.png": label("big.png", "g", "resize-up", size=20),
        "r0.jpg": label("r0.jpg", "h", "dihedral: rotate 0", size=30),
        "r1.jpg": label("r1.jpg", "h", "dihedral: rotate 90", size=30),
        "s.jpg": label("s.jpg", "h", "thumbnail", size=5),
        "logo.png": label("logo.png", "l", "RGBA original"),
    }
    best = best_files(labels)
    assert best["g"] == {"o.jpg", "same.png"}
    assert best["h"] == {"r0.jpg", "r1.jpg"}
    assert best["l"] == {"logo.png"}
    predicted = {"o.jpg": "1", "same.png": "1", "big.png": "1", "r0.jpg": "2", "r1.jpg": "3",
                 "s.jpg": "3", "logo.png": "4"}  # fmt: skip
    # g: kept big.png (wrong); h: split 1 + 2, its cluster "3" keeps r1.jpg (right).
    assert kept_best(predicted, {"1": "big.png", "3": "r1.jpg"}, labels) == (1, 2)


def test_peers_cluster_by_union_find_within_the_threshold() -> None:
    def bits(*ones: int) -> np.ndarray:
        v = np.zeros(64, bool)
        v[list(ones)] = True
        return v

    hashes = {"a": bits(), "b": bits(1, 2), "c": bits(1, 2, 3, 4), "d": bits(*range(30)), "e": None}
    clusters = cluster_within(hashes, 2)  # a~b, b~c (chained), d and the unreadable e alone
    assert clusters == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "e"}


def test_the_generated_set_is_labelled_like_the_dev_sets(tmp_path: Path) -> None:
    write_generated_set(tmp_path)
    labels = read_labels(tmp_path)
    assert all((tmp_path / f).is_file() for f in labels)
    with (tmp_path / "groups.csv").open() as fh:
        assert next(csv.reader(fh)) == ["file", "group", "family", "relation", "width",
                                        "height", "md5"]  # fmt: skip
    families: dict[str, set[str]] = {}
    for x in labels.values():
        families.setdefault(x.family, set()).add(x.group)
    # Hard negatives: bursts and light/dark designs are families of several groups.
    assert sum(1 for f, groups in families.items() if f and len(groups) > 1) == 7
    assert set(best_files(labels)["photo-00"]) == {"photos/photo-00.jpg"}
