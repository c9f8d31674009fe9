"""What `dedup scan` writes: the JSON and CSV of every file (the report's layout,
dedup/report/result.schema.json), the report's HTML gallery, and the totals line (the
listing above it is dedup.report.text's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dedup.report import gallery, model
from dedup.report.model import Row

TOOL = "dedup scan"


def to_json(root: str, rows: Sequence[Row], seconds: float) -> str:
    """One entry per file, in path order, with the folder and the time the scan took."""
    return model.to_json(rows, TOOL, root=root, seconds=round(seconds, 3))


def to_csv(rows: Sequence[Row]) -> str:
    return model.to_csv(rows)


def to_html(root: str, rows: Sequence[Row], thumbnails: Mapping[str, str]) -> str:
    return gallery.render(rows, thumbnails, title=TOOL, source=f"folder {root}")


def totals_line(rows: Sequence[Row], seconds: float) -> str:
    return f"{model.summary(model.totals(rows))} ({seconds:.1f} s)"
