"""The report's pure part: rows, totals, JSON and CSV (the gallery: test_gallery.py)."""

import csv
import io
import json

from dedup.report import model
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Scores

K = DecisionKind
EVIL = "<script>alert(1)</script>\"onerror=alert(2) x='.jpg"


def decision(image_id: str, kind: "K.ValueType", **fields: object) -> Decision:
    d = Decision(
        image_id=image_id,
        kind=kind,
        container="uploads",
        blob_name=f"{image_id}.jpg",
        blob_url=f"http://blob/uploads/{image_id}.jpg",
        working_copy_url=f"http://blob/derived/{image_id}.jpg",
        status=ImageStatus.IMAGE_STATUS_OK,
        size_bytes=1000,
        width=640,
        height=480,
        quality=0.5,
    )
    for name, value in fields.items():
        if name in ("evidence", "quality_parts"):
            getattr(d, name).CopyFrom(value)
        elif name == "similar":
            assert isinstance(value, list)
            d.similar.extend(value)
        else:
            setattr(d, name, value)
    return d


DECISIONS = [
    decision("b", K.DECISION_KIND_KEEP, cluster_id="a", quality=0.9),
    decision(
        "a",
        K.DECISION_KIND_DUPLICATE,
        cluster_id="a",
        duplicate_of="b",
        size_bytes=700,
        evidence=Scores(inliers=120, aligned_residual=0.02, pdq_distance=4),
        reason="matcher: 120 inliers",
    ),
    decision("c", K.DECISION_KIND_DUPLICATE, cluster_id="a", duplicate_of="b", size_bytes=300),
    decision("d", K.DECISION_KIND_UNIQUE, similar=["e"]),
    decision("e", K.DECISION_KIND_UNIQUE, similar=["d"]),
    decision(
        "f",
        K.DECISION_KIND_UNREADABLE,
        status=ImageStatus.IMAGE_STATUS_CORRUPT,
        reason="truncated",
    ),
    decision("g", K.DECISION_KIND_DELETED, status=ImageStatus.IMAGE_STATUS_DELETED),
]


def test_rows_put_each_cluster_together_with_its_kept_copy_first() -> None:
    rows = model.rows(DECISIONS)
    assert [(r.image_id, r.cluster, r.decision, r.keep) for r in rows] == [
        ("b", "a", "keep", True),
        ("a", "a", "duplicate", False),
        ("c", "a", "duplicate", False),
        ("d", "d", "unique", True),
        ("e", "e", "unique", True),
        ("f", "f", "unreadable", True),
        ("g", "g", "deleted", False),
    ]
    a = rows[1]
    assert a.scores == {
        "pdq_distance": 4,
        "inliers": 120,
        "aligned_residual": a.scores["aligned_residual"],
    }
    assert (a.duplicate_of, a.reason, a.name, a.status) == (
        "b",
        "matcher: 120 inliers",
        "uploads/a.jpg",
        "ok",
    )
    assert rows[5].status == "corrupt"


def test_totals_count_images_clusters_duplicates_and_bytes_freed() -> None:
    t = model.totals(model.rows(DECISIONS))
    assert t == model.Totals(
        images=6,
        clusters=1,
        duplicates=2,
        unique=2,
        unreadable=1,
        not_images=0,
        deleted=1,
        bytes_freed=1000,
    )


def test_json_has_totals_and_every_image() -> None:
    report = json.loads(model.to_json(model.rows(DECISIONS)))
    assert report["totals"]["bytes_freed"] == 1000
    assert [i["image_id"] for i in report["images"]] == list("bacdefg")
    first = report["images"][0]
    assert {"path", "cluster", "keep", "status", "reason", "quality", "scores", "name"} <= set(
        first
    )
    assert report["images"][3]["similar"] == ["e"] and report["images"][3]["similar_paths"] == [
        "e.jpg"
    ]
    assert report["schema_version"] == model.SCHEMA_VERSION and report["tool"] == "dedup report"
    # The same meaning as in `dedup scan`'s JSON: an image id, its path beside it.
    assert report["images"][1]["duplicate_of"] == "b"
    assert report["images"][1]["duplicate_of_path"] == "b.jpg"
    # No quality for an image that was not read.
    assert report["images"][5]["quality"] is None


def test_csv_has_a_row_per_image_and_defuses_formulas() -> None:
    rows = model.rows(
        [*DECISIONS, decision("h", K.DECISION_KIND_UNIQUE, blob_name="=cmd|'/c calc'!A1")]
    )
    table = list(csv.DictReader(io.StringIO(model.to_csv(rows))))
    assert len(table) == 8
    assert table[1]["inliers"] == "120" and table[1]["keep"] == "false"
    assert next(r for r in table if r["image_id"] == "h")["path"] == "'=cmd|'/c calc'!A1"


def test_csv_keeps_names_with_line_breaks_whole() -> None:
    names = ["a\rb.jpg", "c\nd.jpg", "e\r\nf.jpg", 'g,"h".jpg']
    rows = model.rows([decision(n[0], K.DECISION_KIND_UNIQUE, blob_name=n) for n in names])
    table = list(csv.DictReader(io.StringIO(model.to_csv(rows), newline="")))
    assert sorted(r["path"] for r in table) == sorted(names)


def test_human_bytes() -> None:
    assert [model.human_bytes(n) for n in (999, 1500, 2_000_000, 3 * 10**15)] == [
        "999 B",
        "1.5 KB",
        "2.0 MB",
        "3000.0 TB",
    ]
