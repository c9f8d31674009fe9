"""The labelled dev sets (../shared/data/dev) as files and pairs, for the benchmarks.

Two files of one set are a duplicate pair when their `group` is equal; a hard negative
when their groups differ but their `family` is the same (another shot of one scene, a
light/dark design pair); otherwise an ordinary negative. Byte-identical files are
skipped as pairs (they prove nothing about the stage under test).
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"

PairKind = Literal["duplicate", "hard", "negative"]


@dataclass(frozen=True)
class DevFile:
    name: str  # <set>/<file>
    group: str  # <set>:<group>
    family: str  # <set>:<family>, or "" when the file has none
    relation: str
    data: bytes


def dev_files(root: Path) -> list[DevFile]:
    files = []
    for groups in sorted(root.glob("*/groups.csv")):
        name = groups.parent.name
        with groups.open(newline="") as fh:
            for row in csv.DictReader(fh):
                files.append(
                    DevFile(
                        name=f"{name}/{row['file']}",
                        group=f"{name}:{row['group']}",
                        family=f"{name}:{row['family']}" if row["family"] else "",
                        relation=row["relation"],
                        data=(groups.parent / row["file"]).read_bytes(),
                    )
                )
    return files


def kind_of(a: DevFile, b: DevFile) -> PairKind:
    if a.group == b.group:
        return "duplicate"
    if a.family and a.family == b.family:
        return "hard"
    return "negative"


def pairs(
    files: list[DevFile], negatives: int, seed: int = 0
) -> Iterator[tuple[PairKind, int, int]]:
    """Every duplicate and hard-negative pair (by index), and a sample of other pairs."""
    others = []
    for i, j in itertools.combinations(range(len(files)), 2):
        if files[i].data == files[j].data:
            continue
        kind = kind_of(files[i], files[j])
        if kind == "negative":
            others.append((i, j))
        else:
            yield kind, i, j
    for i, j in random.Random(seed).sample(others, min(negatives, len(others))):
        yield "negative", i, j
