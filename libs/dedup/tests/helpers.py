"""What the library's tests share: report rows made by hand."""

from __future__ import annotations

from dedup.report.model import Row


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
