"""What `dedup scan` writes: the JSON of every file, and the report's HTML gallery."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from dedup.report import gallery, model
from dedup.report.model import Row


def entry(r: Row, path_of: Mapping[str, str]) -> dict[str, Any]:
    """One file: where it is, its cluster, keep or not, why; image ids become paths."""
    ok = r.status == "ok"
    return {
        "path": r.path,
        "cluster": r.cluster,
        "keep": r.keep,
        "decision": r.decision,
        "status": r.status,
        "reason": r.reason,
        "quality": r.quality if ok else None,
        "duplicate_of": path_of.get(r.duplicate_of) if r.duplicate_of else None,
        "similar": sorted(path_of.get(i, i) for i in r.similar),
        "size_bytes": r.size_bytes,
        "width": r.width,
        "height": r.height,
        "scores": r.scores,
        "image_id": r.image_id,
    }


def to_json(root: str, rows: Sequence[Row], seconds: float) -> str:
    """`{"root", "seconds", "totals", "images": [...]}`: one entry per file, in path order."""
    path_of = {r.image_id: r.path for r in rows}
    return json.dumps(
        {
            "root": root,
            "seconds": round(seconds, 3),
            "totals": dataclasses.asdict(model.totals(rows)),
            "images": [entry(r, path_of) for r in rows],
        },
        indent=1,
        ensure_ascii=False,
    )


def to_html(root: str, rows: Sequence[Row], thumbnails: Mapping[str, str]) -> str:
    return gallery.render(rows, thumbnails, title="dedup scan", source=f"folder {root}")
