"""`make eval`: `dedup scan` on every labelled set, and on a generated edit set, beside the
peers a user would try instead (imagehash phash and whash, PDQ), with the same metrics.

    .venv/bin/python -m bench.eval [--data ../shared/data/dev] [--sets a,b] [--json OUT]

A labelled set is a folder with a `groups.csv` (file, group, family, relation, width,
height, md5; see ../shared/data/dev/README.md). Per set and method:

- pairwise precision, recall and F1: the pairs of labelled files put in one cluster,
  against the pairs that share a `group` (a set without true pairs has no recall or F1;
  its false pairs are what counts);
- kept best: over the true groups of which the method put two files or more together,
  how often the file it keeps in that cluster is a best copy of the group. Best: the
  group's originals (relation "original..." or "RGBA original..."; byte-identical
  copies of one count too), else, when no file is labelled original, the files with the
  most pixels. dedup keeps the copy its ranker chose; the peers only cluster, so they
  get the policy a user of a hash tool would apply: keep the most pixels, then the
  largest file, then the first name;
- bad: of the files the labels mark undecodable (no width and height: "should be
  skipped or reported"), how many the method reported unreadable. Such files are left
  out of the pairs: nothing can prove what an unreadable file shows;
- the time taken (dedup: the scan itself, its servers already up; peers: hashing and
  clustering).

The peers are clustered with union-find over every pair within the usual threshold:
phash and whash (imagehash, 64-bit hashes): Hamming distance <= 10 (imagededup's default
for 64-bit hashes); PDQ (pdqhash, 256 bits): <= 31 (ThreatExchange's match threshold).
They read files with Pillow as a user would; a file Pillow cannot read stays alone.

The generated set (dedup.synthetic, seeds no test uses): originals with edits in mixed
formats, other shots of one scene (a burst with parallax: separate groups of one
family, the hard negatives), light/dark versions of flat designs (separate groups too)
and unrelated photos.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import imagehash
import numpy as np
import pdqhash  # type: ignore[import-untyped]  # no type hints shipped
from PIL import Image

from apps.scan.core import scan
from apps.scan.session import ScanOptions, scan_endpoints
from bench.dev_sets import DEFAULT_DEV
from bench.metrics import (
    TARGET_F1,
    TARGET_PRECISION,
    Bits,
    Outcome,
    cluster_within,
    outcome,
    read_labels,
)
from bench.recipe import write_recipe_set
from dedup import synthetic
from dedup.logs import configure_cli_logging

GENERATED = "generated-edits"
RECIPE = "imagededup-recipe"  # bench/recipe.py: opt-in (--recipe, or --sets naming it)
PEER_THRESHOLDS = {"phash": 10, "whash": 10, "pdq": 31}


# ---- dedup -------------------------------------------------------------------------------


async def dedup_outcomes(
    folders: Sequence[tuple[str, Path]], milvus_uri: str | None, triton_url: str | None
) -> dict[str, Outcome]:
    """`dedup scan` over each set, with one pair of servers for the whole run."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="dedup-eval-") as tmp:
        async with scan_endpoints(Path(tmp) / "run", milvus_uri, triton_url) as endpoints:
            for i, (name, folder) in enumerate(folders):
                labels = read_labels(folder)
                print(f"  dedup scan {name} ({len(labels)} labelled files)", file=sys.stderr)
                result = await scan(
                    folder, endpoints, Path(tmp) / f"blobs-{i}", ScanOptions(progress=False)
                )
                rows = {r.path: r for r in result.rows}
                missing = set(labels) - set(rows)
                if missing:
                    raise RuntimeError(f"{name}: the scan has no entry for {sorted(missing)[:5]}")
                predicted = {f: rows[f].cluster for f in labels}
                kept = {r.cluster: r.path for r in result.rows if r.keep and r.path in labels}
                unreadable = {f for f in labels if rows[f].status != "ok"}
                results[name] = outcome(
                    "dedup", predicted, kept, labels, result.seconds, unreadable
                )
    return results


# ---- peers -------------------------------------------------------------------------------


def peer_hashes(path: Path) -> dict[str, Bits] | None:
    """phash, whash and PDQ bits of a file, or None when Pillow cannot read it."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = np.asarray(img.convert("RGB"))
            return {
                "phash": np.asarray(imagehash.phash(img).hash, bool).ravel(),
                "whash": np.asarray(imagehash.whash(img).hash, bool).ravel(),
                "pdq": np.asarray(pdqhash.compute(rgb)[0], bool),
            }
    except Exception:  # any file Pillow or a hash cannot take: a user's tool skips it
        return None


def keep_largest(predicted: Mapping[str, str], folder: Path) -> dict[str, str]:
    """cluster -> the file a hash-tool user keeps: most pixels, largest file, first name."""

    def size(f: str) -> tuple[int, int, str]:
        try:
            with Image.open(folder / f) as img:
                pixels = img.width * img.height
        except Exception:
            pixels = 0
        return (-pixels, -(folder / f).stat().st_size, f)

    members: dict[str, list[str]] = defaultdict(list)
    for f, c in predicted.items():
        members[c].append(f)
    return {c: min(files, key=size) for c, files in members.items()}


def peer_outcomes(folder: Path) -> list[Outcome]:
    labels = read_labels(folder)
    started = time.perf_counter()
    hashes = {f: peer_hashes(folder / f) for f in labels}
    hash_seconds = time.perf_counter() - started
    out = []
    for method, threshold in PEER_THRESHOLDS.items():
        began = time.perf_counter()
        own = {f: (h[method] if h is not None else None) for f, h in hashes.items()}
        predicted = cluster_within(own, threshold)
        seconds = time.perf_counter() - began + hash_seconds / len(PEER_THRESHOLDS)
        kept = keep_largest(predicted, folder)
        unreadable = {f for f, h in own.items() if h is None}
        out.append(outcome(method, predicted, kept, labels, seconds, unreadable))
    return out


# ---- the generated set -------------------------------------------------------------------


def write_generated_set(folder: Path, seed: int = 31) -> None:
    """Originals and edits, bursts, light/dark designs and unrelated photos, with labels."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    formats = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))

    def put(
        name: str, img: Image.Image, group: str, family: str, relation: str, fmt: str
    ) -> Image.Image:
        """Write the file; return the image as decoded from it (what an edit starts from)."""
        quality = 92 if relation == "original" else int(rng.integers(70, 91))
        data = synthetic.encode(img, fmt, quality=quality)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        rows.append(
            {
                "file": name,
                "group": group,
                "family": family,
                "relation": relation,
                "width": img.width,
                "height": img.height,
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            }
        )
        return Image.open(io.BytesIO(data)).convert("RGB")

    edits = sorted(synthetic.EDITS)
    for i in range(12):  # originals with 4 edits each
        group = f"photo-{i:02d}"
        # Edits are made from the published file, as they are in the wild.
        original = put(
            f"photos/{group}.jpg", synthetic.photo(880_000 + seed * 100 + i), group, group,
            "original", "JPEG",
        )  # fmt: skip
        for edit in rng.choice(edits, size=4, replace=False):
            fmt, ext = formats[int(rng.integers(3))]
            edited = synthetic.EDITS[str(edit)](original)
            put(f"photos/{group}-{edit}.{ext}", edited, group, group, str(edit), fmt)
    for s in range(4):  # bursts: every frame its own group, one family; frame 0 edited
        family = f"scene-{s}"
        for frame in range(3):
            group = f"{family}-frame-{frame}"
            shot = put(
                f"bursts/{group}.jpg", synthetic.burst(890_000 + seed * 100 + s, frame), group,
                family, "original", "JPEG",
            )  # fmt: skip
            if frame == 0:
                small = synthetic.EDITS["resize-half"](shot)
                put(f"bursts/{group}-small.png", small, group, family, "resize-half", "PNG")
    for d in range(3):  # a design and its dark version: different groups of one family
        family = f"design-{d}"
        for dark in (False, True):
            design = synthetic.wallpaper(895_000 + seed * 100 + d, dark=dark)
            group = f"{family}-{'dark' if dark else 'light'}"
            put(f"designs/{group}.png", design, group, family, "original", "PNG")
    for u in range(10):  # unrelated photos
        put(f"other/single-{u}.jpg", synthetic.photo(897_000 + seed * 100 + u), f"single:{u}",
            "", "singleton", "JPEG")  # fmt: skip
    with (folder / "groups.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---- the table ---------------------------------------------------------------------------


def number(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def table(sets: Sequence[tuple[str, int, list[Outcome]]]) -> str:
    head = (
        f"{'set':26s} {'files':>5s} {'method':6s} {'prec':>6s} {'recall':>6s} {'F1':>6s}"
        f" {'pairs':>5s} {'false':>5s} {'kept best':>9s} {'bad':>5s} {'time':>7s}"
    )
    lines = [head, "-" * len(head)]
    for name, files, outcomes in sets:
        for i, o in enumerate(outcomes):
            kept = f"{o.kept_best}/{o.kept_groups}" if o.kept_groups else "-"
            bad = f"{o.reported}/{o.undecodable}" if o.undecodable else "-"
            flag = "" if o.method != "dedup" or o.meets_target() else "  < target"
            lines.append(
                f"{name if i == 0 else '':26s} {files if i == 0 else '':>5} {o.method:6s}"
                f" {number(o.precision):>6s} {number(o.recall):>6s} {number(o.f1):>6s}"
                f" {o.true_pairs:5d} {o.false_pairs:5d} {kept:>9s} {bad:>5s}"
                f" {o.seconds:6.1f}s{flag}"
            )
    return "\n".join(lines)


def ahead_of_peers(outcomes: Sequence[Outcome]) -> bool:
    """dedup's F1 (or, without true pairs, its false pairs) beats or ties every peer's."""
    ours, peers = outcomes[0], outcomes[1:]
    if ours.f1 is None:
        return all(ours.false_pairs <= p.false_pairs for p in peers)
    return all(ours.f1 >= (p.f1 or 0.0) for p in peers)


def labelled_sets(data: Path, only: set[str] | None) -> list[tuple[str, Path]]:
    found = [(p.parent.name, p.parent) for p in sorted(data.glob("*/groups.csv"))]
    return [(n, p) for n, p in found if only is None or n in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DEV, help="folder of labelled sets")
    parser.add_argument("--sets", help="comma-separated set names (default: all, and generated)")
    parser.add_argument("--no-generated", action="store_true", help="skip the generated set")
    parser.add_argument(
        "--recipe", action="store_true", help=f"add {RECIPE} (bench/recipe.py) to the sets"
    )
    parser.add_argument("--json", type=Path, help="write the numbers as JSON too")
    parser.add_argument("--milvus-uri", help="a running Milvus (default: a private Milvus Lite)")
    parser.add_argument("--triton-url", help="a running Triton (default: a private one)")
    ns = parser.parse_args(argv)
    configure_cli_logging()
    only = set(ns.sets.split(",")) if ns.sets else None

    with tempfile.TemporaryDirectory(prefix="dedup-eval-set-") as tmp:
        folders = labelled_sets(ns.data, only) if ns.data.is_dir() else []
        if not folders and only is None:
            print(f"no labelled sets under {ns.data}: the generated set only", file=sys.stderr)
        if not ns.no_generated and (only is None or GENERATED in only):
            generated = Path(tmp) / GENERATED
            write_generated_set(generated)
            folders.append((GENERATED, generated))
        if ns.recipe or (only is not None and RECIPE in only):
            recipe_set = Path(tmp) / RECIPE
            write_recipe_set(recipe_set, recipe_set, ns.data)
            folders.append((RECIPE, recipe_set))
        if not folders:
            print("nothing to evaluate", file=sys.stderr)
            return 2
        started = time.perf_counter()
        ours = asyncio.run(dedup_outcomes(folders, ns.milvus_uri, ns.triton_url))
        print("  peers: phash, whash, pdq", file=sys.stderr)
        sets = [
            (name, len(read_labels(folder)), [ours[name], *peer_outcomes(folder)])
            for name, folder in folders
        ]
    print(table(sets))
    print(
        f"\ntarget: dedup F1 >= {TARGET_F1} with precision >= {TARGET_PRECISION} on every set"
        f" (sets without true pairs: no false pair), ahead of every peer"
    )
    missed = [n for n, _, o in sets if not o[0].meets_target()]
    behind = [n for n, _, o in sets if not ahead_of_peers(o)]
    print(f"  below target: {', '.join(missed) or 'none'}")
    print(f"  behind a peer: {', '.join(behind) or 'none'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if ns.json:
        numbers = {
            name: [asdict(o) | {"precision": o.precision, "recall": o.recall, "f1": o.f1}
                   for o in outcomes]
            for name, _, outcomes in sets
        }  # fmt: skip
        ns.json.write_text(json.dumps(numbers, indent=1))
    return 0 if not missed and not behind else 1


if __name__ == "__main__":
    sys.exit(main())
