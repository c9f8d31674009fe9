"""One output layout for `dedup scan` and `dedup report`: both JSONs pass the JSON Schema
in the repository (libs/dedup/report/result.schema.json), every field of an entry is in
it, and the CSV has the same fields."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

import jsonschema
import pytest

from apps.scan import output
from dedup.report import model
from dedup.report.model import Row
from dedup.tests.helpers import SCHEMA, row
from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.features_pb2 import ImageStatus

IMAGE = SCHEMA["$defs"]["image"]


def rows() -> list[Row]:
    """A cluster of three (kept, duplicate, duplicate of a duplicate), similar unique
    images, an unreadable image, a file that is no image, a stage failure."""
    return [
        row("k", "kept.jpg", cluster="c", reason="kept: the original"),
        row(
            "d",
            "copies/dup.jpg",
            cluster="c",
            decision="duplicate",
            keep=False,
            duplicate_of="k",
            reason="a downscale of the kept copy; matcher: 120 inliers",
            scores={"inliers": 120, "aligned_residual": 0.02, "pdq_distance": 4},
        ),
        row("u", "u.png", cluster="u", decision="unique", similar=("v",)),
        row("v", "v.png", cluster="v", decision="unique", similar=("u", "gone")),
        row("b", "broken.jpg", cluster="b", decision="unreadable", status="corrupt", reason="x"),
        row("n", "notes.txt", cluster="n", decision="unreadable", status=model.NOT_AN_IMAGE),
        row("e", "e.jpg", cluster="e", decision="unreadable", status="error", reason="bug"),
    ]


def check(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_scan_and_report_json_pass_the_schema() -> None:
    scan = json.loads(output.to_json("/photos", rows(), 1.25))
    report = json.loads(model.to_json([dataclasses.replace(r, container="up") for r in rows()]))
    for document in (scan, report):
        check(document)
        assert document["schema_version"] == SCHEMA["properties"]["schema_version"]["const"]
    assert (scan["tool"], scan["root"], scan["seconds"]) == ("dedup scan", "/photos", 1.25)
    assert report["tool"] == "dedup report"


def test_duplicate_of_means_the_same_in_scan_and_report() -> None:
    scan = json.loads(output.to_json("/photos", rows(), 1.0))["images"][1]
    report = json.loads(model.to_json(rows()))["images"][1]
    for dup in (scan, report):
        assert (dup["duplicate_of"], dup["duplicate_of_path"]) == ("k", "kept.jpg")


def test_totals_count_files_that_are_no_image_apart() -> None:
    totals = json.loads(output.to_json("/photos", rows(), 1.0))["totals"]
    assert (totals["unreadable"], totals["not_images"], totals["images"]) == (2, 1, 7)
    assert "2 unreadable, 1 not images;" in model.summary(model.totals(rows()))


def test_a_document_that_breaks_the_layout_fails() -> None:
    good = json.loads(output.to_json("/photos", rows(), 1.0))
    for broken in (
        {k: v for k, v in good.items() if k != "schema_version"},
        good | {"schema_version": 2},
        good | {"images": [good["images"][0] | {"keep": "yes"}]},
        good | {"images": [good["images"][0] | {"status": "fine"}]},
        good | {"images": [{k: v for k, v in good["images"][0].items() if k != "path"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check(broken)


def test_the_schema_names_every_field_status_decision_and_score() -> None:
    entry = model.entry(rows()[1], {})
    assert tuple(entry) == model.ENTRY_FIELDS == tuple(IMAGE["properties"])
    assert set(IMAGE["required"]) == set(model.ENTRY_FIELDS)
    totals = SCHEMA["properties"]["totals"]
    assert (
        set(totals["properties"])
        == set(totals["required"])
        == {f.name for f in dataclasses.fields(model.Totals)}
    )
    statuses = {model.status_label(s) for s in ImageStatus.values()} | {"error"}
    assert set(IMAGE["properties"]["status"]["enum"]) == statuses | {model.NOT_AN_IMAGE}
    kinds = {model.kind_label(k) for k in DecisionKind.values() if k}
    assert set(IMAGE["properties"]["decision"]["enum"]) == kinds
    assert tuple(IMAGE["properties"]["scores"]["properties"]) == model.SCORE_FIELDS


def test_the_csv_has_the_json_fields_one_row_per_image() -> None:
    table = list(csv.DictReader(io.StringIO(output.to_csv(rows()), newline="")))
    images = json.loads(output.to_json("/photos", rows(), 1.0))["images"]
    assert tuple(table[0]) == model.CSV_COLUMNS and len(table) == len(images)
    for cells, image in zip(table, images, strict=True):
        for name, value in image.items():
            if name == "scores":
                assert {k: v for k, v in cells.items() if k in value} == {
                    k: str(v) for k, v in value.items()
                }
            elif isinstance(value, list):
                assert json.loads(cells[name]) == value
            elif isinstance(value, bool):
                assert cells[name] == ("true" if value else "false")
            else:
                assert cells[name] == ("" if value is None else str(value)), name
    assert (table[3]["similar"], table[3]["similar_paths"]) == ('["gone", "u"]', '[null, "u.png"]')
