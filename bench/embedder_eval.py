"""How well the embedding model tells edits from unrelated photos, and how fast it runs.

The evidence behind the embedder's thresholds (`DEDUP_EMBEDDER_ADD_THRESHOLD`,
`DEDUP_EMBEDDER_DROP_THRESHOLD`) and its throughput figures. Everything goes through the
real pipeline: the hasher's decode and working copy, the embedder's preprocessing, and
the model on the running Triton server (`make up`).

Image sets:
- synthetic: generated photos (`dedup.synthetic`), each in every edit of
  `dedup.synthetic.EDITS` plus a few harder ones (crop 25 %, off-centre crop, overlay,
  letterbox, JPEG q25), and unrelated generated photos as distractors;
- real: the Unsplash suite of the dev sets, edited the same way (when present);
- labelled: each set in ../shared/data/dev as it is (when present).

It prints
- edit -> original cosine similarity per edit (rotations and flips apart: the hashes
  match those turned, and the embedder then compares the new image turned back);
- unrelated pairs (different groups and families) per source;
- recall@10 of edit -> original: the original among the 10 nearest images of the set,
  the query's own sibling edits left out (byte-identical copies are not queries);
- threshold suggestions: add = the 99.5th percentile of unrelated real pairs (few false
  candidates for the matcher), drop = the 0.5th percentile of edit -> original
  similarities (a true duplicate is almost never dropped), and both rates at the
  configured thresholds;
- throughput through Triton at batch 1 and batch 32 (one request in flight), and with
  32 concurrent single-image callers merged by the embedder's micro-batcher.

    .venv/bin/python bench/embedder_eval.py [--dev ../shared/data/dev] [--originals 40]
    .venv/bin/python bench/embedder_eval.py --throughput-only --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
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


EDITS: dict[str, synthetic.Edit] = synthetic.EDITS | {
    "crop-25": _crop(0.125, 0.125, 0.875, 0.875),
    "crop-corner": _crop(0.0, 0.0, 0.75, 0.8),
    "overlay": _overlay,
    "letterbox": _letterbox,
    "jpeg-25": _jpeg25,
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


def real_edits(folder: Path, count: int) -> list[Item]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = []
    for path in files[:count]:
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


def unrelated(items: Sequence[Item], e: Floats) -> Floats:
    """Similarities of pairs of different groups and families (hard negatives left out)."""
    groups = np.array([it.group for it in items])
    families = np.array([it.family for it in items])
    sims = e @ e.T
    apart = (groups[:, None] != groups[None, :]) & (families[:, None] != families[None, :])
    return np.asarray(sims[np.triu(apart, 1)], dtype=np.float32)


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


def row(label: str, values: Sequence[float] | Floats) -> str:
    v = np.asarray(values)
    p = np.percentile(v, [1, 10, 50, 99, 99.9])
    return (
        f"  {label:34s} n={len(v):6d}  min={v.min():6.3f}  p1={p[0]:6.3f}  p10={p[1]:6.3f}  "
        f"median={p[2]:6.3f}  p99={p[3]:6.3f}  p99.9={p[4]:6.3f}  max={v.max():6.3f}"
    )


def report_set(name: str, items: Sequence[Item], e: Floats, per_edit: bool) -> None:
    hits, total = recall_at(items, e, 10, None)
    straight = recall_at(items, e, 10, False)
    print(f"{name}: {len(items)} images; recall@10 edit->original {hits}/{total}"
          f" (without rotations/flips {straight[0]}/{straight[1]})")  # fmt: skip
    if per_edit:
        for edit, sims in sorted(edit_similarities(items, e).items()):
            print(row(edit[:34], sims))


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--originals", type=int, default=40, help="synthetic originals")
    parser.add_argument("--distractors", type=int, default=100, help="synthetic singletons")
    parser.add_argument("--real", type=int, default=40, help="Unsplash photos to edit")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    parser.add_argument("--throughput-only", action="store_true")
    args = parser.parse_args()
    settings = EmbedderSettings()
    client = InferenceServerClient(settings.triton_url)
    model = TritonEmbedder(client, settings.triton_model, service="bench", timeout_seconds=60)
    try:
        info = await model.describe()
        print(f"model {info.name}: input {info.side}x{info.side}, {info.dim} dims, "
              f"Triton {settings.triton_url}\n")  # fmt: skip
        if not args.throughput_only:
            await accuracy(model, info.side, args, settings)
        if args.seconds > 0:
            for batch in (1, 32):
                rate = await throughput(model, info.side, batch, args.seconds)
                print(f"throughput through Triton, batch {batch:2d}: {rate:6.1f} images/s")
            rate = await concurrent_throughput(model, info.side, 32, args.seconds)
            print(f"throughput through Triton, 32 concurrent callers (micro-batched): {rate:6.1f}")
    finally:
        await model.aclose()
        await client.close()


async def accuracy(
    model: TritonEmbedder, side: int, args: argparse.Namespace, settings: EmbedderSettings
) -> None:
    negatives: dict[str, Floats] = {}
    pos: list[float] = []

    sets: list[tuple[str, Callable[[], list[Item]], bool]] = [
        ("synthetic", partial(synthetic_set, args.originals, args.distractors), True)
    ]
    if args.dev.is_dir():
        suite = args.dev / "unsplash-coenm-image-suite"
        if suite.is_dir() and args.real:
            sets.append(("real photos, edited", partial(real_edits, suite, args.real), True))
        for folder in sorted(p for p in args.dev.iterdir() if (p / "groups.csv").is_file()):
            sets.append((f"labelled {folder.name}", partial(labelled_set, folder), False))
    else:
        print(f"({args.dev} not found: labelled sets skipped)\n")
    for name, make, per_edit in sets:
        items = make()
        e = await embed_all(model, items, side)
        report_set(name, items, e, per_edit)
        negatives[name] = unrelated(items, e)
        pos.extend(positives(items, e))
        print(row("unrelated pairs", negatives[name]), "\n")

    real = [v for k, v in negatives.items() if k != "synthetic"] or [negatives["synthetic"]]
    real_neg = np.concatenate(real)
    synth_neg = negatives["synthetic"]
    print(row("edit->original, no rotations/flips", pos))
    print(row("unrelated, real photos", real_neg))
    print(row("unrelated, generated photos", synth_neg))
    add = float(np.percentile(real_neg, 99.9))
    drop = float(np.percentile(pos, 0.5))
    print(f"\nsuggested: add >= {add:.3f} (p99.9 of unrelated real pairs), "
          f"drop < {drop:.3f} (p0.5 of edit->original)")  # fmt: skip
    configured = (settings.add_threshold, settings.drop_threshold)
    for label, (a, d) in (("suggested", (add, drop)), ("configured", configured)):
        print(f"{label:10s} {rates(np.asarray(pos), real_neg, synth_neg, a, d)}")
    print()


if __name__ == "__main__":
    asyncio.run(main())
