"""The HTML report: one self-contained page that stays quick at 100,000 images.

Pure: rows and thumbnail sources in, one HTML file out. The rows are embedded once, as
JSON in a `<script type="application/json">` (with `<`, `>` and `&` written as `\\u003c`
escapes, so that no name can close the tag), and the page's own script (gallery.js beside
this file) renders only the page of items in view: the duplicate clusters (the kept
copy's "why", each image's quality parts and evidence), the similar-not-merged pairs as
two pictures side by side, and the unique, unreadable and not-an-image files, with search
by name, sort and filters. Names, paths and reasons are data: the script puts them in the
page with `textContent`, never as markup, and the page's Content-Security-Policy lets only
that script (by its hash) run, with no network but images. An image source is used only if
it is one of ours (a JPEG data URI) or an http(s) URL, a link only if it is http(s) or
file (a scanned folder's files).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlsplit

from PIL import Image

from dedup.report.model import NOT_AN_IMAGE, SCORE_FIELDS, Row, clusters, totals
from dedup.v1.features_pb2 import QualityParts

THUMBNAIL_SIDE = 160
DATA_URI_PREFIX = "data:image/jpeg;base64,"
# Thumbnails embedded at most (about 5 KB each): the largest clusters' and the similar
# pairs' images first; the rest show their name only.
MAX_THUMBNAILS = 2000
LINK_SCHEMES = ("http", "https", "file")
# The id of the data's script element; the page's script reads it.
DATA_ID = "dedup-data"
# What a column of `images` holds (the JSON's compact rows; gallery.js reads them by
# these positions). Repeated strings are indices into the tables beside them.
IMAGE_COLUMNS = (
    "name",
    "decision",  # index into `decisions`
    "status",  # index into `statuses`
    "cluster",  # index into `clusters`, -1 if in none
    "size_bytes",
    "width",
    "height",
    "quality",  # null unless the image was read
    "reason",  # index into `reasons`
    "url",  # a link (http, https or file): its text, or an index into `url_prefixes`
    # when it is that prefix + the name, %-encoded as `quote(name, safe="/")` writes it
    "thumbnail",  # a JPEG data URI, an http(s) URL, or ""
    "scores",  # the evidence: [index into `score_names`, value, ...]
    "quality_parts",  # the values of `part_names`, in order, or [] if not known
)
PART_NAMES = tuple(f.name for f in QualityParts.DESCRIPTOR.fields)
# A name's segments %-encoded, its slashes kept: as `Path.as_uri` and the Azure SDK write
# file and blob URLs, and as gallery.js's encodePath does.
_URI_SAFE = "/"
_NOTHING_TO_ENCODE = re.compile(r"[A-Za-z0-9/_.~-]*")


class _Table:
    """Distinct values, each numbered in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        return self.index.setdefault(value, len(self.index))

    @property
    def values(self) -> list[str]:
        return list(self.index)


def _similar_reason(a: Row, b: Row) -> str:
    """Why the pair is another shot, not a copy: the link's reason, from either image."""
    return a.similar_reasons.get(b.image_id) or b.similar_reasons.get(a.image_id) or ""


def _short(value: float | int) -> float | int:
    """A score as the page shows it: a float (a proto float32) to 6 significant digits."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _url_column(url: str, name: str, prefixes: _Table) -> str | int:
    """A link as the page embeds it: the index of its prefix when the rest is the name,
    encoded as the page's script encodes it (most links: a folder or a container), else
    its text ("" for none)."""
    link = safe_link(url) or ""
    if not link:
        return ""
    try:
        encoded = name if _NOTHING_TO_ENCODE.fullmatch(name) else quote(name, safe=_URI_SAFE)
    except UnicodeEncodeError:  # a name that is not valid Unicode: linked as it is
        return link
    if link and name and link.endswith(encoded):
        return prefixes(link[: len(link) - len(encoded)])
    return link


STYLE = """
:root { --kept: #2a8a2a; --line: #ddd; --muted: #666; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #222; }
h1 { font-size: 20px; margin: .2em 0; }
table.totals td { padding: 0 1em 0 0; }
nav.tabs button { font: inherit; padding: .3em .8em; border: 1px solid var(--line);
  background: #f6f6f6; cursor: pointer; }
nav.tabs button[aria-selected="true"] { background: #fff; border-bottom-color: #fff;
  font-weight: bold; }
.controls { display: flex; flex-wrap: wrap; gap: .6em; align-items: center;
  padding: .6em 0; border-bottom: 1px solid var(--line); }
.controls input[type=search] { width: 22em; font: inherit; }
.controls button[aria-pressed="true"] { font-weight: bold; background: #e4f0e4; }
.pager { display: flex; gap: .6em; align-items: center; padding: .5em 0; }
section.item { border-bottom: 1px solid var(--line); padding: .5em 0; }
section.item h2 { font-size: 15px; margin: .2em 0; }
.why { margin: .2em 0 .4em; color: #1d5e1d; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 200px; border: 3px solid var(--line); padding: 4px; }
figure.kept { border-color: var(--kept); }
figure img, figure .none { width: 100%; height: 140px; object-fit: contain;
  background: #f4f4f4; }
figure .none { display: flex; align-items: center; justify-content: center; color: #999; }
figcaption { font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 4px; font-weight: bold; color: #fff;
  background: #888; margin-right: 4px; }
.kept .badge { background: var(--kept); }
.muted { color: var(--muted); }
table.list { border-collapse: collapse; width: 100%; }
table.list td, table.list th { text-align: left; padding: 2px 8px 2px 0;
  border-bottom: 1px solid #eee; vertical-align: top; overflow-wrap: anywhere; }
.empty { padding: 1em 0; color: var(--muted); }
"""


def safe_src(src: str | None) -> str | None:
    """An image source we are willing to put in the page, or None."""
    if not src:
        return None
    if src.startswith(DATA_URI_PREFIX):
        return src
    return src if urlsplit(src).scheme in ("http", "https") else None


def safe_link(url: str | None) -> str | None:
    """A link we are willing to put in the page (http, https, file), or None."""
    scheme, colon, _ = (url or "").partition(":")
    return url if colon and scheme.lower() in LINK_SCHEMES else None


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


def similar_pairs(all_rows: Sequence[Row]) -> list[tuple[str, str]]:
    """Every similar-not-merged pair once, as (smaller id, larger id), sorted."""
    return sorted({(min(r.image_id, s), max(r.image_id, s)) for r in all_rows for s in r.similar})


def shown_images(all_rows: Sequence[Row], limit: int = MAX_THUMBNAILS) -> list[Row]:
    """The images that get a thumbnail (fetch only these): the members of the clusters
    with the most bytes to free and the images of the similar pairs, taken in turn, at
    most `limit`."""
    by_id = {r.image_id: r for r in all_rows}
    in_clusters = [r for c in clusters(all_rows) for r in c.members]
    in_pairs = [by_id[i] for pair in similar_pairs(all_rows) for i in pair if i in by_id]
    out: dict[str, Row] = {}
    for k in range(max(len(in_clusters), len(in_pairs))):
        for source in (in_clusters, in_pairs):
            if len(out) >= limit:
                return list(out.values())
            if k < len(source):
                out.setdefault(source[k].image_id, source[k])
    return list(out.values())


def data(
    all_rows: Sequence[Row],
    thumbnails: Mapping[str, str],
    *,
    title: str = "dedup report",
    source: str = "",
    link_suffix: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What the page embeds: the totals, the images as compact rows (IMAGE_COLUMNS),
    the clusters (indices into the images, the most bytes to free first), the similar
    pairs (two image indices and the index of the reason), and `link_suffix`: per
    container, what to append to its blobs' links (a SAS query, "?sv=..."; one per
    container rather than one per image keeps the page small)."""
    found = clusters(all_rows)
    index = {r.image_id: n for n, r in enumerate(all_rows)}
    cluster_of = {r.image_id: k for k, c in enumerate(found) for r in c.members}
    decisions, statuses, reasons, prefixes = _Table(), _Table(), _Table(), _Table()
    containers = _Table()
    score_index = {name: n for n, name in enumerate(SCORE_FIELDS)}
    images = [
        [
            r.name,
            decisions(r.decision),
            statuses(r.status),
            cluster_of.get(r.image_id, -1),
            r.size_bytes,
            r.width,
            r.height,
            r.quality if r.status == "ok" else None,
            reasons(r.reason),
            _url_column(r.url, r.name, prefixes),
            safe_src(thumbnails.get(r.image_id)) or "",
            [
                x
                for k, v in r.scores.items()
                if k in score_index
                for x in (score_index[k], _short(v))
            ],
            [r.quality_parts[p] for p in PART_NAMES] if r.quality_parts else [],
        ]
        for r in all_rows
    ]
    similar = [  # before the tables are read: the pairs' reasons are in `reasons` too
        [index[a], index[b], reasons(_similar_reason(all_rows[index[a]], all_rows[index[b]]))]
        for a, b in similar_pairs(all_rows)
        if a in index and b in index
    ]
    return {
        "title": title,
        "source": source,
        "columns": IMAGE_COLUMNS,
        "decisions": decisions.values,
        "statuses": statuses.values,
        "reasons": reasons.values,
        "url_prefixes": prefixes.values,
        "score_names": SCORE_FIELDS,
        "part_names": PART_NAMES,
        "totals": vars(totals(all_rows)),
        "images": images,
        "clusters": [
            [index[c.kept.image_id] if c.kept else -1, [index[r.image_id] for r in c.members]]
            for c in found
        ],
        "similar": similar,
        "link_suffix": dict(link_suffix or {}),
        # Each image's container (an index into `containers`), where links take a suffix.
        "container_of": [containers(r.container) for r in all_rows] if link_suffix else [],
        "containers": containers.values,
        "not_an_image": NOT_AN_IMAGE,
    }


# What JSON text may hold that would end or confuse the script element it sits in.
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def script_json(value: object) -> str:
    """JSON that is safe inside `<script type="application/json">`: `<`, `>`, `&` (and the
    two line separators, and a lone surrogate: a file name that is not valid Unicode) as
    \\u escapes, which JSON.parse reads back as they were."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def embedded(page: str) -> dict[str, Any]:
    """The data a page embeds, read back (for tests and tools)."""
    start = page.index(f'<script type="application/json" id="{DATA_ID}">')
    body = page[page.index(">", start) + 1 : page.index("</script>", start)]
    value: dict[str, Any] = json.loads(body)
    return value


def names(page: str) -> list[str]:
    """The names of the images a page holds."""
    return [row[0] for row in embedded(page)["images"]]


def image_entries(page: str) -> list[dict[str, Any]]:
    """The images a page holds, each as {column: value}, the tables' values filled in."""
    d = embedded(page)
    out = []
    for row in d["images"]:
        e = dict(zip(d["columns"], row, strict=True))
        e["decision"], e["status"] = d["decisions"][e["decision"]], d["statuses"][e["status"]]
        e["reason"] = d["reasons"][e["reason"]]
        if isinstance(e["url"], int):
            e["url"] = d["url_prefixes"][e["url"]] + quote(e["name"], safe=_URI_SAFE)
        scores = e["scores"]
        e["scores"] = {
            d["score_names"][k]: v for k, v in zip(scores[::2], scores[1::2], strict=True)
        }
        e["quality_parts"] = dict(zip(d["part_names"], e["quality_parts"], strict=False))
        out.append(e)
    return out


def script() -> str:
    return files("dedup.report").joinpath("gallery.js").read_text(encoding="utf-8")


def render(
    all_rows: Sequence[Row],
    thumbnails: Mapping[str, str],
    *,
    title: str = "dedup report",
    source: str = "",
    link_suffix: Mapping[str, str] | None = None,
) -> str:
    """The report page: every image, in one file with no outside resource."""
    code = script()
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    policy = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data: http: https:; base-uri 'none'; form-action 'none'"
    )
    payload = data(all_rows, thumbnails, title=title, source=source, link_suffix=link_suffix)
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="muted">{html.escape(source)}</p>' if source else "",
            '<div id="app"><p class="empty">Loading the report&hellip; (it needs JavaScript)'
            "</p></div>",
            f'<script type="application/json" id="{DATA_ID}">{script_json(payload)}</script>',
            f"<script>{code}</script>",
            "</body></html>",
        ]
    )
