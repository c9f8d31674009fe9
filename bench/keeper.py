"""Which copy `dedup scan` keeps: the original, in groups of it and its edits?

Each group is one photo as it is (the original, its own file) and four edited copies of
it, each made by one edit or two in a row from every kind a user's folder holds:
downscale, crop, re-encode, blur, noise, greyscale, hue, caption, logo, border,
palette/dither, a PNG re-saved from the JPEG. The kinds are dealt round-robin, so each
kind appears in about as many groups as the others. Every edit here degrades the photo or
adds to it; none improves it, so the original should be kept in every group.

Photos: by default the even-indexed Unsplash photos and skimage-data's photos (as
bench/recipe.py), which the keeper's rules were not tuned on (`--photos odd` takes the
odd-indexed Unsplash photos instead: the tuning set). Without the dev sets: generated
photos (dedup.synthetic).

    python -m bench.keeper [--photos even|odd] [--seed N] [--keep DIR] [--same-times]

The files are written in the order a user's folder gets them, the original first; with
`--same-times` every file gets one modification time, so that only the pixels can tell
which copy came first (the ranker's last word on copies as good by quality is the first
written).

It prints, per edit kind, in how many of the groups holding that kind the original was
kept, then every group where it was not (which copy was kept, and why). Groups the scan
did not cluster at all are counted apart (that is recall, not the keeper's choice).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from apps.scan.core import scan
from apps.scan.session import ScanOptions, scan_endpoints
from bench.dev_sets import DEFAULT_DEV
from bench.recipe import IMAGE_SUFFIXES, UNSPLASH, recipe_photos
from dedup import synthetic
from dedup.logs import configure_cli_logging

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]
TARGET = 0.97
EDITS_PER_GROUP = 4


def downscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = float(rng.uniform(0.4, 0.7))
    size = (max(16, round(img.width * factor)), max(16, round(img.height * factor)))
    return img.resize(size, Image.Resampling.LANCZOS)


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = float(rng.uniform(0.72, 0.88))  # half to three quarters of the area
    w, h = round(img.width * side), round(img.height * side)
    left = int(rng.integers(0, img.width - w + 1))
    top = int(rng.integers(0, img.height - h + 1))
    return img.crop((left, top, left + w, top + h))


def blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.2, 2.5))))


def noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(img.convert("RGB"), np.float32)
    noisy = pixels + rng.normal(0, float(rng.uniform(6, 14)), pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def greyscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    grey = ImageOps.grayscale(img)
    if rng.random() < 0.5:  # 16-bit, as some converters write it
        return Image.fromarray(np.asarray(grey, np.uint16) * 257)
    return grey


def hue(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    hsv = np.asarray(img.convert("RGB").convert("HSV"), np.uint8).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.integers(20, 60))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def caption(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    size = out.height // 12
    y = out.height - 2 * size if rng.random() < 0.5 else size // 2
    text = ("summer 2026", "do not share", "family trip", "best day ever")[int(rng.integers(4))]
    draw.text((size // 2, y), text, fill="white", font=_font(size), stroke_width=2,
              stroke_fill="black")  # fmt: skip
    return out


def logo(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    r = max(8, min(out.size) // 10)
    x, y = out.width - 2 * r - r // 2, out.height - 2 * r - r // 2
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    draw.ellipse((x, y, x + 2 * r, y + 2 * r), fill=colour, outline="white", width=2)
    draw.text((x + r // 3, y + r // 2), "ACME", fill="white", font=_font(r // 2))
    return out


def border(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    width = max(4, round(min(img.size) * float(rng.uniform(0.04, 0.1))))
    fill = ("white", "black", (40, 40, 40))[int(rng.integers(3))]
    return ImageOps.expand(img.convert("RGB"), border=width, fill=fill)


def palette(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    colours = int(rng.choice([32, 64, 128]))
    return img.convert("RGB").quantize(colours, dither=Image.Dither.FLOYDSTEINBERG)


@dataclass(frozen=True)
class Kind:
    name: str
    edits: tuple[Edit, ...]
    # How the copy is saved: "JPEG" (quality 90), "LOW" (a JPEG at quality 40-70: a
    # re-encode) or "PNG" (lossless: a re-save, for an edit with no pixels changed).
    fmt: str


KINDS: tuple[Kind, ...] = (
    Kind("downscale", (downscale,), "JPEG"),
    Kind("crop", (crop,), "JPEG"),
    Kind("re-encode", (), "LOW"),
    Kind("blur", (blur,), "JPEG"),
    Kind("noise", (noise,), "PNG"),
    Kind("greyscale", (greyscale,), "PNG"),
    Kind("hue", (hue,), "JPEG"),
    Kind("caption", (caption,), "JPEG"),
    Kind("logo", (logo,), "PNG"),
    Kind("border", (border,), "JPEG"),
    Kind("palette", (palette,), "PNG"),
    Kind("png-from-jpeg", (), "PNG"),
    Kind("downscale+re-encode", (downscale,), "LOW"),
    Kind("crop+caption", (crop, caption), "JPEG"),
    Kind("greyscale+downscale", (greyscale, downscale), "PNG"),
    Kind("border+downscale", (border, downscale), "JPEG"),
    Kind("blur+png", (blur,), "PNG"),
)


def encoded(img: Image.Image, fmt: str, rng: np.random.Generator) -> tuple[bytes, str]:
    out = io.BytesIO()
    if fmt == "PNG":
        img.save(out, "PNG")
        return out.getvalue(), "png"
    quality = int(rng.integers(40, 71)) if fmt == "LOW" else 90
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue(), "jpg"


@dataclass(frozen=True)
class Group:
    original: str
    copies: dict[str, str]  # file -> kind


def photos(which: str, data: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the photos groups are made of."""
    if which == "even":
        paths = recipe_photos(data)
    else:
        folder = data / UNSPLASH
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths = found[1::2] if folder.is_dir() else []
    if paths:
        return [(p.name, p.read_bytes()) for p in paths]
    generated = []
    for seed in range(40):
        out = io.BytesIO()
        synthetic.photo(900 + seed).save(out, "JPEG", quality=92)
        generated.append((f"photo-{seed:02d}.jpg", out.getvalue()))
    return generated


def write_groups(folder: Path, sources: Sequence[tuple[str, bytes]], seed: int = 7) -> list[Group]:
    """Each photo and EDITS_PER_GROUP edited copies, under folder/<group>/."""
    rng = np.random.default_rng(seed)
    groups, turn = [], 0
    for index, (name, data) in enumerate(sources):
        stem = name.rsplit(".", 1)[0]
        place = folder / f"g{index:03d}"
        place.mkdir(parents=True)
        (place / name).write_bytes(data)
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            source = opened.copy()
        copies = {}
        for _ in range(EDITS_PER_GROUP):
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            img = source
            for edit in kind.edits:
                img = edit(img, rng)
            body, ext = encoded(img, kind.fmt, rng)
            file = place / f"{stem}-{kind.name}.{ext}"
            file.write_bytes(body)
            copies[str(file.relative_to(folder))] = kind.name
        groups.append(Group(str((place / name).relative_to(folder)), copies))
    return groups


@dataclass
class Tally:
    kept: Counter[str]
    seen: Counter[str]
    unclustered: int
    failures: list[str]
    groups: int


async def judge(folder: Path, groups: Sequence[Group], milvus: str | None, triton: str | None
                ) -> Tally:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dedup-keeper-") as tmp:
        async with scan_endpoints(Path(tmp) / "run", milvus, triton) as endpoints:
            result = await scan(folder, endpoints, Path(tmp) / "blobs", ScanOptions(progress=False))
    rows = {r.path: r for r in result.rows}
    tally = Tally(Counter(), Counter(), 0, [], 0)
    for g in groups:
        original = rows[g.original]
        together = [f for f in g.copies if rows[f].cluster and rows[f].cluster == original.cluster]
        if not original.cluster or not together:
            tally.unclustered += 1
            continue
        tally.groups += 1
        kinds = {g.copies[f] for f in together}
        tally.seen.update(kinds)
        if original.keep:
            tally.kept.update(kinds)
            continue
        kept = next(f for f in together if rows[f].keep) if any(rows[f].keep for f in together) \
            else "another file"  # fmt: skip
        why = rows[kept].reason if kept in rows else ""
        tally.failures.append(f"{g.original}: kept {kept} ({g.copies.get(kept, '?')}): {why}")
    return tally


def report(tally: Tally) -> str:
    kept_groups = tally.groups - len(tally.failures)
    share = kept_groups / tally.groups if tally.groups else 0.0
    lines = [
        f"original kept in {kept_groups}/{tally.groups} clustered groups ({share:.1%}; target "
        f">= {TARGET:.0%}); {tally.unclustered} groups not clustered",
        "",
        f"{'edit kind':24s} {'original kept':>14s}",
    ]
    for kind in KINDS:
        seen = tally.seen[kind.name]
        if seen:
            lines.append(f"{kind.name:24s} {tally.kept[kind.name]:>6d}/{seen:<7d}")
    if tally.failures:
        lines += ["", "groups where another copy was kept:", *(f"  {f}" for f in tally.failures)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", choices=("even", "odd"), default="even")
    parser.add_argument("--data", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--keep", type=Path, help="write the groups here and keep them")
    parser.add_argument("--seed", type=int, default=7, help="the edits' random seed")
    parser.add_argument(
        "--same-times", action="store_true", help="one modification time for every file"
    )
    parser.add_argument("--milvus", help="a running Milvus instead of a private one")
    parser.add_argument("--triton", help="a running Triton instead of a private one")
    ns = parser.parse_args(argv)
    configure_cli_logging()
    with tempfile.TemporaryDirectory(prefix="dedup-keeper-set-") as tmp:
        folder = ns.keep or Path(tmp) / "groups"
        groups = write_groups(folder, photos(ns.photos, ns.data), ns.seed)
        if ns.same_times:
            stamp = time.time_ns()
            for file in folder.rglob("*.*"):
                os.utime(file, ns=(stamp, stamp))
        print(f"{len(groups)} groups of 1 original + {EDITS_PER_GROUP} copies in {folder}",
              file=sys.stderr)  # fmt: skip
        tally = asyncio.run(judge(folder, groups, ns.milvus, ns.triton))
    print(report(tally))
    return 0 if tally.groups and (tally.groups - len(tally.failures)) >= TARGET * tally.groups \
        else 1  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
