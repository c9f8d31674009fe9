"""The result as terminal lines: each duplicate cluster with its kept copy first, then
each duplicate, one line per image with the reason (the evidence); the similar pairs,
the unreadable images and the files that are no image after them.

Pure: rows in, lines out. Names and reasons are user data: every one goes through
`dedup.clitools.shown`, so that a control character in a file name never reaches the
terminal raw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dedup.clitools import shown
from dedup.report.model import NOT_AN_IMAGE, UNREADABLE, Row, clusters, evidence, human_bytes

# The label of an image in a cluster, padded to one width.
KEPT, COPY = "keep", "dup "
# A word of a reason that may be an image id (they are hex digits).
_WORD = re.compile(r"[\w-]+")


def _why(r: Row, names: Mapping[str, str]) -> str:
    """The reason, else the evidence's scores (a reason names the proof; scores are raw),
    with the image ids in it (a duplicate of a duplicate: "via <id>: ...") named."""
    why = r.reason or evidence(r.scores)
    return _WORD.sub(lambda word: names.get(word[0], word[0]), why)


def _image(label: str, r: Row, names: Mapping[str, str]) -> str:
    size = f"{r.width}x{r.height}, {human_bytes(r.size_bytes)}"
    why = _why(r, names)
    return f"  {label} {shown(r.name)}  ({size})" + (f": {shown(why)}" if why else "")


def cluster_lines(all_rows: Sequence[Row]) -> list[str]:
    """Every duplicate cluster, the most bytes to free first: a heading, the kept copy,
    each duplicate."""
    found = clusters(all_rows)
    lines: list[str] = []
    for n, c in enumerate(found, 1):
        lines.append(
            f"cluster {n} of {len(found)}: {len(c.members)} images, "
            f"{human_bytes(c.bytes_freed)} to free"
        )
        names = {r.image_id: r.name for r in c.members}
        if c.kept is not None:
            lines.append(_image(KEPT, c.kept, names))
        lines += [_image(COPY, r, names) for r in c.duplicates]
    return lines


def similar_lines(all_rows: Sequence[Row]) -> list[str]:
    name = {r.image_id: r.name for r in all_rows}
    pairs = sorted({(min(r.image_id, s), max(r.image_id, s)) for r in all_rows for s in r.similar})
    if not pairs:
        return []
    shown_pairs = sorted((shown(name.get(a, a)), shown(name.get(b, b))) for a, b in pairs)
    return [f"similar, not merged (another shot of the scene): {len(pairs)}"] + [
        f"  {a}  ~  {b}" for a, b in shown_pairs
    ]


def unreadable_lines(all_rows: Sequence[Row]) -> list[str]:
    """The images that could not be read (with status and reason), then the files that
    are no image at all."""
    lines: list[str] = []
    bad = [r for r in all_rows if r.decision == UNREADABLE and r.status != NOT_AN_IMAGE]
    if bad:
        lines.append(f"unreadable: {len(bad)}")
        lines += [f"  {shown(r.name)}  ({r.status}): {shown(r.reason)}" for r in bad]
    others = [r for r in all_rows if r.status == NOT_AN_IMAGE]
    if others:
        lines.append(f"not images: {len(others)}")
        lines += [f"  {shown(r.name)}" for r in others]
    return lines


def listing(all_rows: Sequence[Row]) -> list[str]:
    """What a person reads after a scan, above the totals line; no line when nothing but
    unique images was found."""
    parts = [cluster_lines(all_rows), similar_lines(all_rows), unreadable_lines(all_rows)]
    lines: list[str] = []
    for part in parts:
        if part:
            lines += [*part, ""]
    return lines
