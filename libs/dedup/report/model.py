"""The report's pure part: decisions -> rows, clusters and totals; JSON and CSV text.

No Kafka, blob storage or files here: `dedup.report.cli` does the I/O.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dedup.clitools import dedup_version
from dedup.formats import not_an_image
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Scores, Verdict

# Decision kinds as the report (and the `decision` metric label) spells them.
KEEP, DUPLICATE, UNIQUE, UNREADABLE, DELETED = (
    "keep",
    "duplicate",
    "unique",
    "unreadable",
    "deleted",
)
SCORE_FIELDS = tuple(f.name for f in Scores.DESCRIPTOR.fields)
# A file that is no image at all (a text file, an archive): reported apart from images
# that could not be read (dedup.formats tells them apart).
NOT_AN_IMAGE = "not_an_image"
# The version of the JSON (and CSV) layout below: result.schema.json beside this file.
# Raised when a field changes meaning or goes; a new optional field keeps it.
SCHEMA_VERSION = 1


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


def quality_parts_dict(d: Decision) -> dict[str, float]:
    """The quality score's parts, every one (0 is a value), or none if not carried."""
    if not d.HasField("quality_parts"):
        return {}
    parts = d.quality_parts
    return {f.name: round(float(getattr(parts, f.name)), 3) for f in parts.DESCRIPTOR.fields}


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
    # The hasher's quality score's parts (resolution, sharpness, noise, jpeg_quality,
    # exposure; services/hasher/quality.py), when the decision carries them.
    quality_parts: dict[str, float] = field(default_factory=dict)
    # Why another shot and not a copy, per similar image this image's own group judged
    # (its links; the other image of a pair may carry it instead).
    similar_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How a person recognises the image: container/blob name, else the id."""
        if self.path:
            return f"{self.container}/{self.path}" if self.container else self.path
        return self.url or self.image_id


def row(d: Decision) -> Row:
    kind = kind_label(d.kind)
    status, reason = status_label(d.status), d.reason
    if why := not_an_image(d.blob_name, status, reason):
        status, reason = NOT_AN_IMAGE, why
    return Row(
        image_id=d.image_id,
        container=d.container,
        path=d.blob_name,
        url=d.blob_url,
        cluster=d.cluster_id or d.image_id,
        decision=kind,
        keep=kind not in (DUPLICATE, DELETED),
        duplicate_of=d.duplicate_of,
        status=status,
        reason=reason,
        quality=round(float(d.quality), 4),
        size_bytes=d.size_bytes,
        width=d.width,
        height=d.height,
        scores=scores_dict(d.evidence),
        similar=tuple(d.similar),
        working_copy_url=d.working_copy_url,
        quality_parts=quality_parts_dict(d),
        similar_reasons={
            link.image_id: link.reason
            for link in d.links
            if link.verdict == Verdict.VERDICT_SIMILAR and link.reason
        },
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
    images: int  # every file still stored (deleted ones are not counted)
    clusters: int  # duplicate clusters
    duplicates: int  # images that could go: a better copy is kept
    unique: int
    unreadable: int  # images that could not be read (not counting `not_images`)
    not_images: int  # files that are no image at all (status not_an_image)
    deleted: int
    bytes_freed: int  # what deleting the duplicates would free


def totals(all_rows: Sequence[Row]) -> Totals:
    count = {k: 0 for k in (KEEP, DUPLICATE, UNIQUE, UNREADABLE, DELETED)}
    for r in all_rows:
        count[r.decision] = count.get(r.decision, 0) + 1
    not_images = sum(r.status == NOT_AN_IMAGE for r in all_rows)
    return Totals(
        images=len(all_rows) - count[DELETED],
        clusters=len({r.cluster for r in all_rows if r.decision in (KEEP, DUPLICATE)}),
        duplicates=count[DUPLICATE],
        unique=count[UNIQUE],
        unreadable=count[UNREADABLE] - not_images,
        not_images=not_images,
        deleted=count[DELETED],
        bytes_freed=sum(r.size_bytes for r in all_rows if r.decision == DUPLICATE),
    )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def summary(t: Totals) -> str:
    """The totals in one line, as every command that judged images ends with."""
    deleted = f" ({t.deleted} deleted since)" if t.deleted else ""
    return (
        f"{t.images} images: {t.clusters} duplicate clusters, {t.duplicates} duplicates, "
        f"{t.unique} unique, {t.unreadable} unreadable, {t.not_images} not images{deleted}; "
        f"deleting the duplicates would free {human_bytes(t.bytes_freed)}"
    )


def evidence(scores: Mapping[str, float | int]) -> str:
    """The scores of a link, as a person reads them: "inliers 120, pdq_distance 4"."""
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()
    )


def entry(r: Row, path_of: Mapping[str, str]) -> dict[str, Any]:
    """One image of the JSON (result.schema.json): image ids name images (`duplicate_of`,
    `similar`), `path_of` (image id -> path) gives their paths beside them."""
    ok = r.status == "ok"
    return {
        "path": r.path,
        "cluster": r.cluster,
        "keep": r.keep,
        "decision": r.decision,
        "status": r.status,
        "reason": r.reason,
        "quality": r.quality if ok else None,
        "duplicate_of": r.duplicate_of or None,
        "duplicate_of_path": path_of.get(r.duplicate_of) if r.duplicate_of else None,
        "similar": sorted(r.similar),
        "similar_paths": [path_of.get(i) for i in sorted(r.similar)],
        "size_bytes": r.size_bytes,
        "width": r.width,
        "height": r.height,
        "scores": r.scores,
        "image_id": r.image_id,
        "container": r.container,
        "name": r.name,
        "url": r.url or None,
        "working_copy_url": r.working_copy_url or None,
    }


def document(all_rows: Sequence[Row], tool: str, **about: object) -> dict[str, Any]:
    """The JSON of a result: `{"schema_version", "tool", ...about, "totals", "images"}`,
    an entry per image in the rows' order; `about` says what was judged (a folder's
    `root` and `seconds`, a report's `topic`)."""
    path_of = {r.image_id: r.path for r in all_rows}
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool,
        "version": dedup_version(),
        **about,
        "totals": asdict(totals(all_rows)),
        "images": [entry(r, path_of) for r in all_rows],
    }


def to_json(all_rows: Sequence[Row], tool: str = "dedup report", **about: object) -> str:
    return json.dumps(document(all_rows, tool, **about), indent=1, ensure_ascii=False)


# The fields of an image's JSON entry, in order (`entry` makes them).
ENTRY_FIELDS = (
    "path",
    "cluster",
    "keep",
    "decision",
    "status",
    "reason",
    "quality",
    "duplicate_of",
    "duplicate_of_path",
    "similar",
    "similar_paths",
    "size_bytes",
    "width",
    "height",
    "scores",
    "image_id",
    "container",
    "name",
    "url",
    "working_copy_url",
)
# The CSV: the entry's fields, each score a column of its own.
CSV_COLUMNS = tuple(
    c for name in ENTRY_FIELDS for c in (SCORE_FIELDS if name == "scores" else (name,))
)
# A cell starting with one of these is a formula to a spreadsheet: blob names are user
# data, so such a cell gets a leading quote (OWASP's advice on CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_value(value: object) -> object:
    """A JSON value as a CSV cell: null empty, true/false, a list as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return _cell(value)


def to_csv(all_rows: Sequence[Row]) -> str:
    """One row per image with the JSON entry's fields (CSV_COLUMNS)."""
    out = io.StringIO()
    # CRLF, as RFC 4180 has it: Python's writer quotes only the line terminator's own
    # characters, so with "\n" a blob name holding a bare "\r" would split its row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    path_of = {r.image_id: r.path for r in all_rows}
    for r in all_rows:
        values = entry(r, path_of)
        values |= values.pop("scores")
        writer.writerow([_csv_value(values.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()
