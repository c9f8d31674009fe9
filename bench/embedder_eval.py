"""How well the embedding model tells edits from unrelated photos, and how fast it runs.

The evidence behind the embedder's thresholds (`DEDUP_EMBEDDER_ADD_THRESHOLD`,
`DEDUP_EMBEDDER_DROP_THRESHOLD`) and its throughput figures. Everything goes through the
real pipeline: the hasher's decode and working copy, the embedder's preprocessing, and
the model on the running Triton server (`make up`).

Image sets:
- synthetic: generated photos (`dedup.synthetic`), each in every edit of
  `dedup.synthetic.EDITS` plus harder ones (crop 25 %, off-centre crop, overlay,
  letterbox, JPEG q25, crops to half the area, arbitrary rotations of 25, 30 and 45
  degrees: "tilt"), and unrelated generated photos as distractors;
- real: the ODD-indexed photos (sorted by file name) of the Unsplash suite of the dev sets,
  edited the same way (when present). The even-indexed ones are held out for a final
  evaluation by someone else: never tune on them (they are not read here at all);
- labelled: each other set in ../shared/data/dev as it is (when present).

It prints
- edit -> original cosine similarity per edit, and the share at or above the add
  threshold (rotations by 90 degrees and flips apart: the hashes match those turned, and
  the embedder then compares the new image turned back; tilts are not turned back);
- unrelated pairs (different groups and families) per source;
- recall@10 of edit -> original: the original among the 10 nearest images of the set,
  the query's own sibling edits left out (byte-identical copies are not queries);
- false candidates: per image, the unrelated images among its `--neighbours` nearest at
  or above the add threshold (what the matcher would have to disprove), on these sets;
- threshold suggestions: add = the 99.9th percentile of unrelated real pairs, drop = the
  0.5th percentile of edit -> original similarities (a true duplicate is almost never
  dropped), and both rates at the configured (or `--add` / `--drop`) thresholds;
- throughput through Triton at batch 1 and batch 32 (one request in flight), and with
  32 concurrent single-image callers merged by the embedder's micro-batcher;
- with --models, one summary row per model (the image sets are made once, so the figures
  of one run compare).

    .venv/bin/python bench/embedder_eval.py [--dev ../shared/data/dev] [--models a,b]
    .venv/bin/python bench/embedder_eval.py --throughput-only --seconds 20
    .venv/bin/python bench/embedder_eval.py --models a,b --rounds 5 --seconds 5  # speed only
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps
from tritonclient.grpc.aio import InferenceServerClient

from dedup import synthetic
from services.embedder.inference import TritonEmbedder
from services.embedder.preprocess import RGB, decode_rgb, model_input
from services.embedder.settings import EmbedderSettings
from services.hasher.decode import DecodeError
from services.hasher.features import extract

DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
UNSPLASH = "unsplash-coenm-image-suite"
# Edits a hash matches turned (PDQ's 8 variants); the embedder compares them turned back.
TURN_WORDS = ("rotat", "flip", "dihedral", "transpose", "mirror", "orientation")
Floats = npt.NDArray[np.float32]


def _crop(left: float, top: float, right: float, bottom: float) -> synthetic.Edit:
    def crop(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.crop((int(w * left), int(h * top), int(w * right), int(h * bottom)))

    return crop


def _overlay(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((w * 0.55, h * 0.05, w * 0.95, h * 0.3), fill=(220, 30, 30))
    draw.text((10, 10), "SALE -50% www.example.com", fill="white")
    return out


def _letterbox(img: Image.Image) -> Image.Image:
    return ImageOps.pad(img, (img.width, img.width), color=(0, 0, 0))


def _jpeg25(img: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(synthetic.encode(img, quality=25)))


def _tilted(degrees: float) -> synthetic.Edit:
    """Rotated by an arbitrary angle on a canvas that holds it all (black corners)."""

    def tilt(img: Image.Image) -> Image.Image:
        return img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)

    return tilt


HALF_AREA_SIDE = 0.5**0.5  # a crop of this fraction of each side keeps half the area
HALF_MARGIN = (1 - HALF_AREA_SIDE) / 2


EDITS: dict[str, synthetic.Edit] = synthetic.EDITS | {
    "crop-25": _crop(0.125, 0.125, 0.875, 0.875),
    "crop-corner": _crop(0.0, 0.0, 0.75, 0.8),
    "overlay": _overlay,
    "letterbox": _letterbox,
    "jpeg-25": _jpeg25,
    "crop-half": _crop(HALF_MARGIN, HALF_MARGIN, 1 - HALF_MARGIN, 1 - HALF_MARGIN),
    "crop-half-corner": _crop(0.0, 0.0, HALF_AREA_SIDE, HALF_AREA_SIDE),
    "tilt-25": _tilted(25),
    "tilt-30": _tilted(-30),
    "tilt-45": _tilted(45),
}


@dataclass(frozen=True)
class Item:
    name: str
    group: str
    family: str
    relation: str
    digest: str  # of the file's bytes: byte-identical copies are not queries
    rgb: RGB  # the decoded working copy, as the embedder reads it

    @property
    def turned(self) -> bool:
        return any(w in self.relation.lower() for w in TURN_WORDS)


def item(name: str, group: str, family: str, relation: str, data: bytes) -> Item | None:
    try:
        working = extract(data).working_copy
    except DecodeError:
        return None
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return Item(name, group, family or group, relation, digest, decode_rgb(working))


def edited(originals: Iterable[tuple[str, Image.Image]], prefix: str) -> list[Item]:
    items = []
    for name, img in originals:
        group = f"{prefix}:{name}"
        for edit, apply in {"original": lambda i: i, **EDITS}.items():
            out = item(
                f"{group}/{edit}", group, group, edit, synthetic.encode(apply(img), quality=88)
            )
            if out is not None:
                items.append(out)
    return items


def synthetic_set(originals: int, distractors: int) -> list[Item]:
    photos = ((f"p{i}", synthetic.photo(5_000 + i)) for i in range(originals))
    items = edited(photos, "synthetic")
    for i in range(distractors):
        data = synthetic.encode(synthetic.photo(7_000 + i), quality=88)
        extra = item(f"d{i}", f"single:d{i}", f"single:d{i}", "distractor", data)
        if extra is not None:
            items.append(extra)
    return items


def labelled_set(folder: Path) -> list[Item]:
    items = []
    with (folder / "groups.csv").open() as f:
        for row in csv.DictReader(f):
            path = folder / row["file"]
            if path.is_file():
                got = item(
                    row["file"], row["group"], row["family"], row["relation"], path.read_bytes()
                )
                if got is not None:
                    items.append(got)
    return items


def tuning_photos(folder: Path) -> list[Path]:
    """The odd-indexed photos of the folder, sorted by name: the even ones are held out."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files[1::2]


def real_edits(folder: Path, count: int) -> list[Item]:
    photos = []
    for path in tuning_photos(folder)[:count]:
        with Image.open(path) as img:
            photos.append((path.stem, img.convert("RGB")))
    return edited(photos, "real")


# ---- measures --------------------------------------------------------------------------------


async def embed_all(model: TritonEmbedder, items: Sequence[Item], side: int) -> Floats:
    inputs = [model_input(i.rgb, side) for i in items]
    out: list[Floats] = []
    for start in range(0, len(inputs), 32):
        out.extend(await model.embed_batch(inputs[start : start + 32]))
    return np.stack(out)


def original_of(items: Sequence[Item]) -> dict[str, int]:
    """The index of each group's original: its 'original...' file, else its first file."""
    firsts: dict[str, int] = {}
    marked: dict[str, int] = {}
    for i, it in enumerate(items):
        firsts.setdefault(it.group, i)
        if it.relation.startswith("original"):
            marked.setdefault(it.group, i)
    return firsts | marked


def queries(items: Sequence[Item]) -> list[tuple[int, int]]:
    """(edit, its original) pairs: every other member of a group, byte copies left out."""
    originals = original_of(items)
    return [
        (q, originals[it.group])
        for q, it in enumerate(items)
        if q != originals[it.group] and it.digest != items[originals[it.group]].digest
    ]


def recall_at(items: Sequence[Item], e: Floats, k: int, turned: bool | None) -> tuple[int, int]:
    """Queries whose original is among the k nearest, siblings left out of the ranking."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        members[it.group].append(i)
    hits = total = 0
    for q, o in queries(items):
        if turned is not None and items[q].turned != turned:
            continue
        sims = e @ e[q]
        sims[members[items[q].group]] = -np.inf  # the query and its siblings...
        sims[o] = e[o] @ e[q]  # ...but not the original
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        hits += int(o in top)
        total += 1
    return hits, total


def edit_similarities(items: Sequence[Item], e: Floats) -> dict[str, list[float]]:
    by_edit: dict[str, list[float]] = defaultdict(list)
    for q, o in queries(items):
        by_edit[items[q].relation].append(float(e[q] @ e[o]))
    return by_edit


def apart(items: Sequence[Item]) -> npt.NDArray[np.bool_]:
    """Pairs of different groups and families (hard negatives, same family, left out)."""
    groups = np.array([it.group for it in items])
    families = np.array([it.family for it in items])
    return np.asarray(
        (groups[:, None] != groups[None, :]) & (families[:, None] != families[None, :])
    )


def unrelated(items: Sequence[Item], e: Floats) -> Floats:
    """Similarities of unrelated pairs, each pair once."""
    return np.asarray((e @ e.T)[np.triu(apart(items), 1)], dtype=np.float32)


def false_candidates(items: Sequence[Item], e: Floats, k: int, add: float) -> npt.NDArray[np.int_]:
    """Per image: the unrelated images among its k nearest (itself left out) at or above
    `add`, i.e. the candidates the embedder would add for the matcher to disprove."""
    sims = e @ e.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(items) - 1)
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    above = np.take_along_axis(sims, nearest, axis=1) >= add
    return np.asarray((above & np.take_along_axis(apart(items), nearest, axis=1)).sum(axis=1))


async def throughput(model: TritonEmbedder, side: int, batch: int, seconds: float) -> float:
    images = list(np.random.default_rng(0).integers(0, 256, (batch, side, side, 3), np.uint8))
    await model.embed_batch(images)  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        await model.embed_batch(images)
        done += batch
    return done / (time.perf_counter() - started)


async def concurrent_throughput(
    model: TritonEmbedder, side: int, callers: int, seconds: float
) -> float:
    """As the service runs: many handlers each asking for one image, merged by the batcher."""
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await model.embed(image)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return done / (time.perf_counter() - started)


# ---- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSet:
    name: str
    items: list[Item]
    per_edit: bool  # edited by us: one row per edit
    real: bool  # photos (not generated): their unrelated pairs set the add threshold


def row(label: str, values: Sequence[float] | Floats, add: float | None = None) -> str:
    v = np.asarray(values)
    p = np.percentile(v, [1, 10, 50, 99, 99.9])
    share = "" if add is None else f"  >=add {np.mean(v >= add):8.4%}"
    return (
        f"  {label:34s} n={len(v):6d}  min={v.min():6.3f}  p1={p[0]:6.3f}  p10={p[1]:6.3f}  "
        f"median={p[2]:6.3f}  p99={p[3]:6.3f}  p99.9={p[4]:6.3f}  max={v.max():6.3f}{share}"
    )


def report_set(image_set: ImageSet, e: Floats, add: float, neighbours: int) -> None:
    items = image_set.items
    hits, total = recall_at(items, e, neighbours, None)
    straight = recall_at(items, e, neighbours, False)
    false = false_candidates(items, e, neighbours, add)
    print(f"{image_set.name}: {len(items)} images; recall@{neighbours} edit->original "
          f"{hits}/{total} (without rotations/flips {straight[0]}/{straight[1]}); false "
          f"candidates per image at add {add:.3f}: mean {false.mean():.2f}, max {false.max()}, "
          f"images with any {np.mean(false > 0):.1%}")  # fmt: skip
    if image_set.per_edit:
        for edit, sims in sorted(edit_similarities(items, e).items()):
            print(row(edit[:34], sims, add))


def rates(pos: Floats, real: Floats, generated: Floats, add: float, drop: float) -> str:
    return (
        f"add {add:.3f}: edits at or above {np.mean(pos >= add):.1%}, unrelated real "
        f"{np.mean(real >= add):.3%}, generated {np.mean(generated >= add):.3%} | drop "
        f"{drop:.3f}: edits below {np.mean(pos < drop):.2%}, unrelated real below "
        f"{np.mean(real < drop):.1%}, generated below {np.mean(generated < drop):.1%}"
    )


def positives(items: Sequence[Item], e: Floats) -> list[float]:
    return [
        s
        for edit, sims in edit_similarities(items, e).items()
        if not any(w in edit.lower() for w in TURN_WORDS)
        for s in sims
    ]


def image_sets(args: argparse.Namespace) -> list[ImageSet]:
    sets = [ImageSet("synthetic", synthetic_set(args.originals, args.distractors), True, False)]
    if not args.dev.is_dir():
        print(f"({args.dev} not found: real and labelled sets skipped)\n")
        return sets
    suite = args.dev / UNSPLASH
    if suite.is_dir() and args.real:
        sets.append(ImageSet("real photos, edited", real_edits(suite, args.real), True, True))
    for folder in sorted(p for p in args.dev.iterdir() if (p / "groups.csv").is_file()):
        # The Unsplash suite's odd photos are in the edited set; its even ones are held out.
        if folder.name != UNSPLASH:
            sets.append(ImageSet(f"labelled {folder.name}", labelled_set(folder), False, True))
    return sets


def percentiles(values: Sequence[float] | Floats, qs: Sequence[float]) -> list[float]:
    return [round(float(v), 3) for v in np.percentile(np.asarray(values), qs)]


async def accuracy(
    model: TritonEmbedder, side: int, sets: Sequence[ImageSet], args: argparse.Namespace
) -> dict[str, object]:
    """Prints the figures of every set; returns the summary of the model's accuracy."""
    real_neg: list[Floats] = []
    synth_neg = np.zeros(0, np.float32)
    pos: list[float] = []
    by_edit: dict[str, list[float]] = defaultdict(list)
    recall = [0, 0]
    embedded: list[tuple[ImageSet, Floats]] = []
    for image_set in sets:
        e = await embed_all(model, image_set.items, side)
        embedded.append((image_set, e))
        report_set(image_set, e, args.add, args.neighbours)
        negatives = unrelated(image_set.items, e)
        print(row("unrelated pairs", negatives, args.add), "\n")
        if image_set.real:
            real_neg.append(negatives)
        else:
            synth_neg = negatives
        pos.extend(positives(image_set.items, e))
        if image_set.per_edit:
            for edit, sims in edit_similarities(image_set.items, e).items():
                by_edit[edit].extend(sims)
            hits, total = recall_at(image_set.items, e, args.neighbours, None)
            recall = [recall[0] + hits, recall[1] + total]

    real = np.concatenate(real_neg) if real_neg else synth_neg
    print(row("edit->original, no rotations/flips", pos, args.add))
    print(row("unrelated, real photos", real, args.add))
    print(row("unrelated, generated photos", synth_neg, args.add))
    add = float(np.percentile(real, 99.9))
    drop = float(np.percentile(pos, 0.5))
    print(f"\nsuggested: add >= {add:.3f} (p99.9 of unrelated real pairs), "
          f"drop < {drop:.3f} (p0.5 of edit->original)")  # fmt: skip
    for label, (a, d) in (("suggested", (add, drop)), ("configured", (args.add, args.drop))):
        print(f"{label:10s} {rates(np.asarray(pos), real, synth_neg, a, d)}")
    print()
    scan = threshold_scan(embedded, by_edit, real, args)
    return {
        "edits (min, p10, median)": {k: percentiles(v, (0, 10, 50)) for k, v in by_edit.items()},
        "edits at or above add": {
            k: round(float(np.mean(np.asarray(v) >= args.add)), 3) for k, v in by_edit.items()
        },
        "unrelated real (p99, p99.9, max)": percentiles(real, (99, 99.9, 100)),
        "unrelated generated (p99, p99.9, max)": percentiles(synth_neg, (99, 99.9, 100)),
        "unrelated real at or above add": round(float(np.mean(real >= args.add)), 6),
        "edits below drop": round(float(np.mean(np.asarray(pos) < args.drop)), 4),
        "unrelated real below drop": round(float(np.mean(real < args.drop)), 3),
        f"recall@{args.neighbours} (edited sets)": recall,
        "false candidates per image at add (mean, max)": {
            image_set.name: [round(float(f.mean()), 3), int(f.max())]
            for image_set, e in embedded
            if image_set.per_edit
            for f in [false_candidates(image_set.items, e, args.neighbours, args.add)]
        },
        "threshold scan": scan,
        "suggested (add, drop)": [round(add, 3), round(drop, 3)],
    }


def threshold_scan(
    embedded: Sequence[tuple[ImageSet, Floats]],
    by_edit: dict[str, list[float]],
    real: Floats,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """At each of --scan's thresholds: the hard edits at or above it, the unrelated real
    pairs at or above it, and the false candidates per image of each edited set."""
    kinds: dict[str, Callable[[str], bool]] = {
        "tilt": lambda edit: edit.startswith("tilt-"),
        "crop-half": lambda edit: edit.startswith("crop-half"),
        "all but 90-degree turns and flips": lambda edit: edit not in ("rotate-90", "mirror"),
    }
    out: dict[str, dict[str, float]] = {}
    print(f"threshold scan (false candidates: per image, among its {args.neighbours} nearest)")
    for t in (float(x) for x in args.scan.split(",")):
        figures: dict[str, float] = {}
        for label, kind in kinds.items():
            sims = np.asarray([s for edit, v in by_edit.items() if kind(edit) for s in v])
            figures[f"{label} >= t"] = round(float(np.mean(sims >= t)), 3)
        figures["unrelated real >= t"] = round(float(np.mean(real >= t)), 5)
        for image_set, e in embedded:
            if image_set.per_edit:
                false = false_candidates(image_set.items, e, args.neighbours, t)
                figures[f"false per image, {image_set.name}"] = round(float(false.mean()), 3)
        print(f"  {t:.3f}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        out[f"{t:.3f}"] = figures
    print()
    return out


async def speed(model: TritonEmbedder, side: int, seconds: float) -> dict[str, object]:
    out: dict[str, object] = {}
    for batch in (1, 32):
        rate = await throughput(model, side, batch, seconds)
        print(f"throughput through Triton, batch {batch:2d}: {rate:6.1f} images/s "
              f"({1000 / rate:5.1f} ms per image)")  # fmt: skip
        out[f"ms per image, batch {batch}"] = round(1000 / rate, 1)
    rate = await concurrent_throughput(model, side, 32, seconds)
    print(f"throughput through Triton, 32 concurrent callers (micro-batched): {rate:6.1f}")
    out["images/s, 32 concurrent callers"] = round(rate, 1)
    return out


async def interleaved_speed(
    client: InferenceServerClient, names: Sequence[str], args: argparse.Namespace
) -> None:
    """ms per image of each model at batch 1 and 32, the models taking turns for --rounds
    rounds, so that a neighbour's load on shared cores falls on all of them alike."""
    models = [TritonEmbedder(client, n, service="bench", timeout_seconds=120) for n in names]
    try:
        sides = [(await m.describe()).side for m in models]
        ms: dict[tuple[str, int], list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            for name, model, side in zip(names, models, sides, strict=True):
                for batch in (1, 32):
                    rate = await throughput(model, side, batch, args.seconds)
                    ms[name, batch].append(1000 / rate)
        print(f"ms per image, {args.rounds} rounds of {args.seconds:g} s: best / median")
        for name, side in zip(names, sides, strict=True):
            figures = [f"batch {b}: {min(ms[name, b]):5.1f} / {np.median(ms[name, b]):5.1f}"
                       for b in (1, 32)]  # fmt: skip
            print(f"  {name:24s} {side:4d} px  " + "   ".join(figures))
    finally:
        for model in models:
            await model.aclose()


async def evaluate(
    client: InferenceServerClient, name: str, sets: Sequence[ImageSet], args: argparse.Namespace
) -> dict[str, object]:
    model = TritonEmbedder(client, name, service="bench", timeout_seconds=120)
    try:
        info = await model.describe()
        print(f"=== model {info.name}: input {info.side}x{info.side}, {info.dim} dims, "
              f"Triton {args.triton_url}\n")  # fmt: skip
        summary: dict[str, object] = {"model": name, "side": info.side, "dims": info.dim}
        if sets:
            summary |= await accuracy(model, info.side, sets, args)
        if args.seconds > 0:
            summary |= await speed(model, info.side, args.seconds)
        return summary
    finally:
        await model.aclose()


async def main() -> None:
    settings = EmbedderSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--triton-url", default=settings.triton_url)
    parser.add_argument("--models", default=settings.triton_model, help="comma-separated")
    parser.add_argument("--originals", type=int, default=40, help="synthetic originals")
    parser.add_argument("--distractors", type=int, default=100, help="synthetic singletons")
    parser.add_argument("--real", type=int, default=48, help="odd Unsplash photos to edit")
    parser.add_argument("--neighbours", type=int, default=settings.neighbours)
    parser.add_argument("--add", type=float, default=settings.add_threshold)
    parser.add_argument("--drop", type=float, default=settings.drop_threshold)
    parser.add_argument("--scan", default="0.3,0.35,0.4,0.45,0.5,0.6", help="thresholds to scan")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=0, help="only speed, models in turns")
    parser.add_argument("--summary", type=Path, help="append one JSON line per model here")
    args = parser.parse_args()
    sets = [] if args.throughput_only else image_sets(args)
    client = InferenceServerClient(args.triton_url)
    try:
        if args.rounds:
            await interleaved_speed(client, args.models.split(","), args)
            return
        for name in args.models.split(","):
            summary = await evaluate(client, name, sets, args)
            print(f"\nsummary: {json.dumps(summary)}\n")
            if args.summary:
                with args.summary.open("a") as out:
                    out.write(json.dumps(summary) + "\n")
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
