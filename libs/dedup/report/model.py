"""The report's pure part: decisions -> rows, clusters and totals; JSON and CSV text.

No Kafka, blob storage or files here: `dedup.report.cli` does the I/O.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Scores

# Decision kinds as the report (and the `decision` metric label) spells them.
KEEP, DUPLICATE, UNIQUE, UNREADABLE, DELETED = (
    "keep",
    "duplicate",
    "unique",
    "unreadable",
    "deleted",
)
SCORE_FIELDS = tuple(f.name for f in Scores.DESCRIPTOR.fields)


def kind_label(kind: DecisionKind.ValueType) -> str:
    """DECISION_KIND_DUPLICATE -> duplicate."""
    return DecisionKind.Name(kind).removeprefix("DECISION_KIND_").lower()


def status_label(status: ImageStatus.ValueType) -> str:
    """IMAGE_STATUS_TOO_LARGE -> too_large; an image known only as a candidate: pending."""
    if status == ImageStatus.IMAGE_STATUS_UNSPECIFIED:
        return "pending"
    return ImageStatus.Name(status).removeprefix("IMAGE_STATUS_").lower()


def scores_dict(scores: Scores) -> dict[str, float | int]:
    """The scores that were computed (absent ones are left out)."""
    return {f.name: value for f, value in scores.ListFields()}


@dataclass(frozen=True)
class Row:
    """One image in the report."""

    image_id: str
    # Where it lives: container and blob name (`path`, as `dedup scan` names files).
    container: str
    path: str
    url: str
    # The cluster it belongs to: its duplicate cluster's id, or its own id when alone.
    cluster: str
    decision: str
    # False only for a duplicate (and a deleted image): exactly one kept image per cluster.
    keep: bool
    duplicate_of: str
    status: str
    reason: str
    quality: float
    size_bytes: int
    width: int
    height: int
    scores: dict[str, float | int] = field(default_factory=dict)
    similar: tuple[str, ...] = ()
    working_copy_url: str = ""

    @property
    def name(self) -> str:
        """How a person recognises the image: container/blob name, else the id."""
        if self.path:
            return f"{self.container}/{self.path}" if self.container else self.path
        return self.url or self.image_id


def row(d: Decision) -> Row:
    kind = kind_label(d.kind)
    return Row(
        image_id=d.image_id,
        container=d.container,
        path=d.blob_name,
        url=d.blob_url,
        cluster=d.cluster_id or d.image_id,
        decision=kind,
        keep=kind not in (DUPLICATE, DELETED),
        duplicate_of=d.duplicate_of,
        status=status_label(d.status),
        reason=d.reason,
        quality=round(float(d.quality), 4),
        size_bytes=d.size_bytes,
        width=d.width,
        height=d.height,
        scores=scores_dict(d.evidence),
        similar=tuple(d.similar),
        working_copy_url=d.working_copy_url,
    )


def rows(decisions: Iterable[Decision]) -> list[Row]:
    """Rows by cluster (the kept copy first), then by name."""
    out = [row(d) for d in decisions]
    return sorted(out, key=lambda r: (r.cluster, not r.keep, r.name, r.image_id))


@dataclass(frozen=True)
class Cluster:
    id: str
    kept: Row | None
    duplicates: tuple[Row, ...]

    @property
    def members(self) -> tuple[Row, ...]:
        return ((self.kept,) if self.kept else ()) + self.duplicates

    @property
    def bytes_freed(self) -> int:
        return sum(r.size_bytes for r in self.duplicates)


def clusters(all_rows: Sequence[Row]) -> list[Cluster]:
    """Duplicate clusters (two images or more), the most bytes to free first."""
    by_id: dict[str, list[Row]] = {}
    for r in all_rows:
        if r.decision in (KEEP, DUPLICATE):
            by_id.setdefault(r.cluster, []).append(r)
    found = []
    for cluster_id, members in by_id.items():
        kept = next((r for r in members if r.decision == KEEP), None)
        duplicates = tuple(sorted((r for r in members if r is not kept), key=lambda r: r.name))
        found.append(Cluster(cluster_id, kept, duplicates))
    return sorted(found, key=lambda c: (-c.bytes_freed, c.id))


@dataclass(frozen=True)
class Totals:
    images: int  # every image still stored (deleted ones are not counted)
    clusters: int  # duplicate clusters
    duplicates: int  # images that could go: a better copy is kept
    unique: int
    unreadable: int
    deleted: int
    bytes_freed: int  # what deleting the duplicates would free


def totals(all_rows: Sequence[Row]) -> Totals:
    count = {k: 0 for k in (KEEP, DUPLICATE, UNIQUE, UNREADABLE, DELETED)}
    for r in all_rows:
        count[r.decision] = count.get(r.decision, 0) + 1
    return Totals(
        images=len(all_rows) - count[DELETED],
        clusters=len({r.cluster for r in all_rows if r.decision in (KEEP, DUPLICATE)}),
        duplicates=count[DUPLICATE],
        unique=count[UNIQUE],
        unreadable=count[UNREADABLE],
        deleted=count[DELETED],
        bytes_freed=sum(r.size_bytes for r in all_rows if r.decision == DUPLICATE),
    )


def to_json(all_rows: Sequence[Row]) -> str:
    """`{"totals": {...}, "images": [...]}`: an entry per image with its decision."""
    images: list[dict[str, Any]] = []
    for r in all_rows:
        entry = asdict(r)
        entry["similar"] = list(r.similar)
        entry["name"] = r.name
        images.append(entry)
    return json.dumps({"totals": asdict(totals(all_rows)), "images": images}, indent=1)


CSV_COLUMNS = (
    "image_id",
    "container",
    "path",
    "cluster",
    "decision",
    "keep",
    "duplicate_of",
    "status",
    "reason",
    "quality",
    "size_bytes",
    "width",
    "height",
    *SCORE_FIELDS,
    "similar",
    "url",
)
# A cell starting with one of these is a formula to a spreadsheet: blob names are user
# data, so such a cell gets a leading quote (OWASP's advice on CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(all_rows: Sequence[Row]) -> str:
    out = io.StringIO()
    # CRLF, as RFC 4180 has it: Python's writer quotes only the line terminator's own
    # characters, so with "\n" a blob name holding a bare "\r" would split its row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in all_rows:
        values: dict[str, object] = asdict(r) | r.scores
        values["similar"] = " ".join(r.similar)
        values["keep"] = "true" if r.keep else "false"
        writer.writerow([_cell(values.get(c, "")) for c in CSV_COLUMNS])
    return out.getvalue()
