"""Is the quality score fooled? Per edit kind, how often an edited copy scores as high as
its original.

Every edit here degrades the photo or adds to it (bench/keeper.py's kinds, and an unsharp
mask), so each copy should score below its original: the share printed per kind, of the
photos where the copy's ``quality().score`` is at least the original's, should be 0.
Photos as bench/keeper.py picks them (``--photos odd``: the tuning set).

    python -m bench.quality_edits [--photos even|odd] [--data DIR] [--seed N] [--parts]
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench.dev_sets import DEFAULT_DEV
from bench.keeper import KINDS, Kind, encoded, photos
from services.hasher.features import extract
from services.hasher.quality import WEIGHTS, Quality


def sharpen(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    radius, percent = float(rng.uniform(1.0, 3.0)), int(rng.integers(80, 250))
    return img.filter(ImageFilter.UnsharpMask(radius, percent, threshold=2))


EDIT_KINDS: tuple[Kind, ...] = (*KINDS, Kind("sharpen", (sharpen,), "JPEG"))


def _copy(source: Image.Image, original: bytes, kind: Kind, rng: np.random.Generator) -> bytes:
    if not kind.edits and kind.fmt == "PNG":  # a re-save: the JPEG's very pixels
        return encoded(Image.open(io.BytesIO(original)).convert("RGB"), "PNG", rng)[0]
    img = source
    for edit in kind.edits:
        img = edit(img, rng)
    return encoded(img, kind.fmt, rng)[0]


def _parts(q: Quality) -> str:
    return " ".join(f"{k}={getattr(q, k):.4f}" for k in ("score", *WEIGHTS))


def fooled(
    sources: Sequence[tuple[str, bytes]], seed: int, parts: bool
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per kind, the photos whose copy scored at least the original; and those whose
    copy's sharpness part (S) did."""
    found: dict[str, list[str]] = {kind.name: [] for kind in EDIT_KINDS}
    sharper: dict[str, list[str]] = {kind.name: [] for kind in EDIT_KINDS}
    for index, (name, data) in enumerate(sources):
        rng = np.random.default_rng((seed, index))
        with Image.open(io.BytesIO(data)) as opened:
            source = opened.convert("RGB")
        original = extract(data).quality
        if parts:
            print(f"{name} original {_parts(original)}")
        for kind in EDIT_KINDS:
            copy = extract(_copy(source, data, kind, rng)).quality
            if parts:
                print(f"  {kind.name:22s} {_parts(copy)}")
            if copy.score >= original.score:
                found[kind.name].append(name)
            if copy.sharpness >= original.sharpness:
                sharper[kind.name].append(name)
    return found, sharper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", choices=("even", "odd"), default="odd")
    parser.add_argument("--data", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parts", action="store_true", help="print every score's parts")
    ns = parser.parse_args(argv)
    sources = photos(ns.photos, ns.data)
    found, sharper = fooled(sources, ns.seed, ns.parts)
    n = len(sources)
    print(f"{n} photos; per edit kind, the share whose copy scored >= the original (Q), and")
    print("whose sharpness part did (S)")
    print(f"{'edit kind':22s} {'Q >= original':>15s} {'S >= original':>15s}")
    for kind, names in found.items():
        s = len(sharper[kind])
        print(
            f"{kind:22s} {len(names):>6d}/{n:<3d}{len(names) / n:6.1%} {s:>6d}/{n:<3d}{s / n:6.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
