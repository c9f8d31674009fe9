"""The HTML gallery: each duplicate cluster's images side by side, the kept one marked.

Pure: rows and thumbnail sources in, one self-contained HTML page out. Blob names,
reasons and URLs are user data: every one goes through `html.escape`, and an image
source is used only if it is one of ours (a JPEG data URI) or an http(s) URL.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from PIL import Image

from dedup.report.model import (
    NOT_AN_IMAGE,
    Cluster,
    Row,
    Totals,
    clusters,
    evidence,
    human_bytes,
    totals,
)

THUMBNAIL_SIDE = 160
DATA_URI_PREFIX = "data:image/jpeg;base64,"

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table.totals td { padding: 0 1em 0 0; }
section.cluster { border-top: 1px solid #ccc; padding: .5em 0; }
section.cluster h2 { font-size: 15px; margin: .3em 0; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 180px; border: 3px solid #ddd; padding: 4px; }
figure.kept { border-color: #2a8a2a; }
figure img { width: 100%; height: 140px; object-fit: contain; background: #f4f4f4; }
figure .none { height: 140px; background: #f4f4f4; display: flex; align-items: center;
  justify-content: center; color: #999; }
figcaption { font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 4px; font-weight: bold; color: #fff;
  background: #888; }
.kept .badge { background: #2a8a2a; }
.muted { color: #777; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def safe_src(src: str | None) -> str | None:
    """An image source we are willing to put in the page, or None."""
    if not src:
        return None
    if src.startswith(DATA_URI_PREFIX):
        return src
    return src if urlsplit(src).scheme in ("http", "https") else None


def thumbnail_data_uri(jpeg: bytes, side: int = THUMBNAIL_SIDE) -> str | None:
    """A small JPEG data URI of an image (a working copy), or None if it does not decode."""
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            img.draft("RGB", (side, side))  # DCT scaling: decode no more than needed
            small = img.convert("RGB")
            small.thumbnail((side, side))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=70)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return DATA_URI_PREFIX + base64.b64encode(out.getvalue()).decode()


def _figure(r: Row, thumbnails: Mapping[str, str]) -> str:
    src = safe_src(thumbnails.get(r.image_id))
    picture = (
        f'<img src="{esc(src)}" alt="{esc(r.name)}" loading="lazy">'
        if src
        else '<div class="none">no thumbnail</div>'
    )
    link = safe_src(r.url)
    name = f'<a href="{esc(link)}">{esc(r.name)}</a>' if link else esc(r.name)
    badge = "KEEP" if r.decision == "keep" else "duplicate"
    details = [f"quality {r.quality:.3f}", f"{r.width}x{r.height}", human_bytes(r.size_bytes)]
    scores = evidence(r.scores)
    lines = [f'<span class="badge">{badge}</span> {name}', esc(" · ".join(details))]
    if scores:
        lines.append(f'<span class="muted">{esc(scores)}</span>')
    if r.reason:
        lines.append(f'<span class="muted">{esc(r.reason)}</span>')
    kept = ' class="kept"' if r.decision == "keep" else ""
    return (
        f'<figure{kept} title="{esc(r.image_id)}">{picture}'
        f"<figcaption>{'<br>'.join(lines)}</figcaption></figure>"
    )


def _cluster(c: Cluster, thumbnails: Mapping[str, str]) -> str:
    n = len(c.members)
    head = f"Cluster {esc(c.id)} · {n} images · {esc(human_bytes(c.bytes_freed))} to free"
    figures = "".join(_figure(r, thumbnails) for r in c.members)
    return f'<section class="cluster"><h2>{head}</h2><div class="row">{figures}</div></section>'


def _totals(t: Totals) -> str:
    cells = [
        ("images", t.images),
        ("duplicate clusters", t.clusters),
        ("duplicates", t.duplicates),
        ("unique", t.unique),
        ("unreadable", t.unreadable),
        ("not images", t.not_images),
        ("deleted", t.deleted),
        ("bytes freed by deleting the duplicates", human_bytes(t.bytes_freed)),
    ]
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in cells)
    return f'<table class="totals">{body}</table>'


def _unreadable(all_rows: Sequence[Row], limit: int, *, not_images: bool = False) -> str:
    """The images that could not be read, or (`not_images`) the files that are none."""
    bad = [
        r
        for r in all_rows
        if r.decision == "unreadable" and (r.status == NOT_AN_IMAGE) == not_images
    ]
    if not bad:
        return ""
    items = "".join(
        f"<tr><td>{esc(r.name)}</td><td>{esc(r.status)}</td><td>{esc(r.reason)}</td></tr>"
        for r in bad[:limit]
    )
    more = f'<p class="muted">and {len(bad) - limit} more</p>' if len(bad) > limit else ""
    head = "Not images" if not_images else "Unreadable"
    return f"<h2>{head}</h2><table>{items}</table>{more}"


def _similar(all_rows: Sequence[Row], limit: int) -> str:
    names = {r.image_id: r.name for r in all_rows}
    pairs = sorted({(min(r.image_id, s), max(r.image_id, s)) for r in all_rows for s in r.similar})
    if not pairs:
        return ""
    items = "".join(
        f"<li>{esc(names.get(a, a))} ~ {esc(names.get(b, b))}</li>" for a, b in pairs[:limit]
    )
    more = f'<p class="muted">and {len(pairs) - limit} more</p>' if len(pairs) > limit else ""
    return (
        '<h2>Similar, not merged</h2><p class="muted">Another shot of the same scene: '
        f"reported, never a duplicate.</p><ul>{items}</ul>{more}"
    )


def render(
    all_rows: Sequence[Row],
    thumbnails: Mapping[str, str],
    *,
    title: str = "dedup report",
    source: str = "",
    max_clusters: int = 500,
) -> str:
    """The gallery page: totals, the clusters with the most bytes to free first."""
    found = clusters(all_rows)
    shown = found[:max_clusters]
    t = totals(all_rows)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{esc(source)}</p>' if source else "",
        _totals(t),
        f"<h2>Duplicate clusters ({len(found)})</h2>",
        "".join(_cluster(c, thumbnails) for c in shown),
        (
            f'<p class="muted">{len(found) - len(shown)} more clusters are in the JSON and '
            "CSV reports.</p>"
            if len(found) > len(shown)
            else ""
        ),
        _similar(all_rows, max_clusters),
        _unreadable(all_rows, max_clusters),
        _unreadable(all_rows, max_clusters, not_images=True),
        f'<p class="muted">{t.unique} unique images are not shown.</p>',
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def shown_images(all_rows: Sequence[Row], max_clusters: int = 500) -> list[Row]:
    """The images whose thumbnails the page shows (fetch only these)."""
    return [r for c in clusters(all_rows)[:max_clusters] for r in c.members]
