"""What the library's tests share: report rows made by hand, the result's JSON Schema."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from dedup.report.model import Row

# The layout of `dedup scan --json` and `dedup report --json`, as the package ships it.
SCHEMA: dict[str, Any] = json.loads(
    files("dedup.report").joinpath("result.schema.json").read_text(encoding="utf-8")
)


def row(image_id: str, path: str, **kw: object) -> Row:
    base: dict[str, object] = {
        "image_id": image_id,
        "container": "",
        "path": path,
        "url": "",
        "cluster": "c",
        "decision": "keep",
        "keep": True,
        "duplicate_of": "",
        "status": "ok",
        "reason": "",
        "quality": 0.5,
        "size_bytes": 1,
        "width": 1,
        "height": 1,
    }
    return Row(**(base | kw))  # type: ignore[arg-type]
