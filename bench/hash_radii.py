"""How far apart duplicates and non-duplicates are, in PDQ and wavelet-hash bits.

The evidence behind the hasher's search radii (`DEDUP_HASHER_PDQ_RADIUS`,
`DEDUP_HASHER_WAVELET_RADIUS`). Two image sets:

- the labelled dev sets in ../shared/data/dev (skipped when absent): every pair of files
  with the same `group` is a duplicate pair, every other pair is not (different groups of
  one `family`, e.g. a stereo pair, are the hard negatives);
- synthetic edits: every edit in `dedup.synthetic.EDITS` applied to real photos (the
  Unsplash suite of the dev sets, when present) and to generated ones.

For each radius it prints the recall (duplicate pairs within the radius) and the false
candidates (non-duplicate pairs within it, as a count and per image), for PDQ (best of
the 8 rotations/flips, as the hasher searches), the wavelet hash (as is) and their union
(what the hasher sends on). Later stages reject false candidates; a missed pair is lost
unless the embedder finds it, so the radii lean to recall.

    .venv/bin/python -m bench.hash_radii [--dev ../shared/data/dev] [--synthetic 40]
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from bench.dev_sets import DEFAULT_DEV, dev_files
from dedup import synthetic
from services.hasher.decode import DecodeError
from services.hasher.features import extract

RADII = (8, 16, 24, 28, 31, 40, 48, 56, 64, 72, 80, 90)
# Popcount of every byte value.
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class Item:
    name: str
    group: str
    family: str
    relation: str
    pdq: npt.NDArray[np.uint8]  # 8 x 32: the dihedral variants, identity first
    wavelet: npt.NDArray[np.uint8]  # 32


def features_of(name: str, group: str, family: str, relation: str, data: bytes) -> Item | None:
    try:
        f = extract(data)
    except DecodeError:
        return None
    pdq = np.frombuffer(b"".join(f.pdq.dihedral), dtype=np.uint8).reshape(8, 32)
    return Item(name, group, family, relation, pdq, np.frombuffer(f.wavelet_hash, dtype=np.uint8))


def dev_items(root: Path) -> list[Item]:
    items = [features_of(f.name, f.group, f.family, f.relation, f.data) for f in dev_files(root)]
    return [i for i in items if i is not None]


def edited_items(originals: list[tuple[str, Image.Image]]) -> list[Item]:
    items = []
    for name, original in originals:
        variants = [("original", synthetic.encode(original, quality=92))]
        variants += [
            (edit, synthetic.encode(apply(original), quality=80))
            for edit, apply in synthetic.EDITS.items()
        ]
        for relation, data in variants:
            item = features_of(f"{name}/{relation}", name, name, relation, data)
            if item is not None:
                items.append(item)
    return items


def real_originals(dev: Path) -> list[tuple[str, Image.Image]]:
    """The Unsplash suite of the dev sets: real photos to edit."""
    suite = dev / "unsplash-coenm-image-suite"
    return [
        (f"unsplash:{path.stem}", Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))
        for path in sorted(suite.glob("*.jpg"))
    ]


def generated_originals(count: int) -> list[tuple[str, Image.Image]]:
    return [(f"synthetic:{i}", synthetic.photo(900 + i)) for i in range(count)]


def distances(items: list[Item]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """(PDQ best-of-8 distance, wavelet distance) between every two items (n x n)."""
    stored = np.stack([i.pdq[0] for i in items])  # the identity hash, as in the index
    queries = np.stack([i.pdq for i in items])  # n x 8 x 32
    wavelets = np.stack([i.wavelet for i in items])
    n = len(items)
    pdq = np.full((n, n), 256, dtype=np.int32)
    for v in range(8):
        xor = queries[:, v, None, :] ^ stored[None, :, :]
        pdq = np.minimum(pdq, POPCOUNT[xor].sum(axis=2, dtype=np.int32))
    wavelet = POPCOUNT[wavelets[:, None, :] ^ wavelets[None, :, :]].sum(axis=2, dtype=np.int32)
    return pdq, wavelet


Measured = tuple[
    npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.bool_], npt.NDArray[np.bool_]
]


def report(
    title: str, items: list[Item], pdq_radius: int, wavelet_radius: int, *, to_original: bool
) -> Measured:
    """Recall and false candidates per radius; `to_original`: only (original, edit) pairs
    count as duplicates (an edit that finds its original joins its cluster)."""
    n = len(items)
    pdq, wavelet = distances(items)
    groups = np.array([i.group for i in items])
    families = np.array([i.family for i in items])
    relations = np.array([i.relation for i in items])
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    same_group = groups[:, None] == groups[None, :]
    same = same_group & upper
    if to_original:
        is_original = relations == "original"
        same &= is_original[:, None] | is_original[None, :]
    other = ~same_group & upper
    hard = other & (families[:, None] == families[None, :]) & (families[:, None] != "")
    pairs = int(other.sum())
    print(f"\n== {title}: {n} images, {same.sum()} duplicate pairs, {pairs} other pairs")
    print(f"   ({hard.sum()} hard negatives: another shot or another design, same family)")
    print("   false: non-duplicate pairs within the radius; per 1M: their rate per million")
    print("   pairs = false candidates per new image when 1M images are stored")
    print(
        f"{'radius':>6} | {'PDQ recall':>10} {'false':>6} {'per 1M':>7} |"
        f" {'wavelet recall':>14} {'false':>6} {'per 1M':>7} | {'union recall':>12}"
    )
    for r in RADII:
        hit_p, hit_w = pdq <= r, wavelet <= r
        union = hit_p | hit_w
        fp, fw = int(hit_p[other].sum()), int(hit_w[other].sum())
        print(
            f"{r:>6} | {hit_p[same].mean():>10.3f} {fp:>6d} {1e6 * fp / pairs:>7.1f} |"
            f" {hit_w[same].mean():>14.3f} {fw:>6d} {1e6 * fw / pairs:>7.1f} |"
            f" {union[same].mean():>12.3f}"
        )
    chosen = (pdq <= pdq_radius) | (wavelet <= wavelet_radius)
    false = int(chosen[other].sum())
    print(
        f"chosen (PDQ <= {pdq_radius} or wavelet <= {wavelet_radius}): recall"
        f" {chosen[same].mean():.3f}, false pairs {false} ({1e6 * false / pairs:.1f} per 1M),"
        f" hard negatives kept {chosen[hard].sum()}"
    )
    kinds = sorted(set(relations[np.nonzero(same)[1]]))
    if to_original:
        found = {k: chosen[same & (relations[None, :] == k)].mean() for k in kinds}
        print("recall by edit: " + ", ".join(f"{k} {v:.2f}" for k, v in found.items()))
    missed = np.argwhere(same & ~chosen)
    if len(missed):
        print(f"missed duplicate pairs ({len(missed)}; PDQ, wavelet distance):")
        for a, b in missed[:12]:
            print(
                f"  {items[a].name} ~ {items[b].name}"
                f" [{items[b].relation}]: {pdq[a, b]}, {wavelet[a, b]}"
            )
    return pdq, wavelet, same, other


def grid(sets: dict[str, Measured]) -> None:
    """Recall and false candidates per 1M stored images for pairs of radii (PDQ, wavelet)."""
    print("\n== both hashes together: recall / false candidates per 1M stored images")
    print(f"{'PDQ':>4} {'wav':>4} | " + " | ".join(f"{name:>22}" for name in sets))
    for pdq_r in (64, 72, 80, 84):
        for wav_r in (-1, 24, 28, 31, 34, 38):
            cells = []
            for pdq, wavelet, same, other in sets.values():
                hit = (pdq <= pdq_r) | (wavelet <= wav_r)
                false = 1e6 * hit[other].sum() / max(1, other.sum())
                cells.append(f"{hit[same].mean():>12.3f} {false:>9.1f}")
            label = "off" if wav_r < 0 else str(wav_r)
            print(f"{pdq_r:>4} {label:>4} | " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--synthetic", type=int, default=40, help="generated originals")
    parser.add_argument("--pdq-radius", type=int, default=None)
    parser.add_argument("--wavelet-radius", type=int, default=None)
    args = parser.parse_args(argv)
    from services.hasher.settings import HasherSettings

    defaults = HasherSettings.model_fields
    pdq_r = int(defaults["pdq_radius"].default) if args.pdq_radius is None else args.pdq_radius
    wav_r = (
        int(defaults["wavelet_radius"].default)
        if args.wavelet_radius is None
        else args.wavelet_radius
    )
    dev = args.dev if args.dev.is_dir() else None
    sets: dict[str, Measured] = {}
    if dev:
        sets["dev sets"] = report(
            "dev sets (labelled)", dev_items(dev), pdq_r, wav_r, to_original=False
        )
        sets["edits of real photos"] = report(
            "dedup.synthetic.EDITS of the real photos (Unsplash suite)",
            edited_items(real_originals(dev)),
            pdq_r,
            wav_r,
            to_original=True,
        )
    else:
        print(f"no dev sets at {args.dev}: generated photos only", file=sys.stderr)
    sets["edits of generated"] = report(
        "dedup.synthetic.EDITS of generated photos",
        edited_items(generated_originals(args.synthetic)),
        pdq_r,
        wav_r,
        to_original=True,
    )
    grid(sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
