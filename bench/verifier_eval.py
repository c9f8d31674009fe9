"""The verifier's colour policy on data: duplicates it would wrongly reject, look-alikes
it rejects.

- dev sets (../shared/data/dev, skipped when absent): every duplicate pair and hard
  negative, and a sample of other pairs, as the hasher would hand them over (signatures
  from the hasher's features, the candidate turned by the PDQ transform the hasher finds);
- colour edits (brightness, contrast, gamma, greyscale, sepia, hue, saturation, white
  balance) of photos: the Unsplash suite of the dev sets and generated ones;
- light/dark wallpaper pairs (`dedup.synthetic.wallpaper`): re-coloured designs, and
  brightness edits of the same wallpapers (copies).

    .venv/bin/python -m bench.verifier_eval [--dev ../shared/data/dev] [--negatives 3000]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from bench.dev_sets import DEFAULT_DEV, dev_files, pairs
from dedup import synthetic
from dedup.colour import ColourSignature
from services.hasher.decode import DecodeError
from services.hasher.features import Features, extract
from services.hasher.handler import transform_of_candidate
from services.hasher.hashes import best_dihedral
from services.verifier.colour_check import ColourCheck, ColourPolicy, check
from services.verifier.settings import VerifierSettings

Edit = Callable[[Image.Image], Image.Image]


def _hue(degrees: int) -> Edit:
    def shift(img: Image.Image) -> Image.Image:
        h, s, v = img.convert("HSV").split()
        h = h.point(lambda x: (x + degrees * 256 // 360) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")

    return shift


def _white_balance(img: Image.Image) -> Image.Image:
    r, g, b = img.split()
    return Image.merge(
        "RGB", (r.point(lambda x: min(255, int(x * 1.15))), g, b.point(lambda x: int(x * 0.85)))
    )


COLOUR_EDITS: dict[str, Edit] = {
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.4),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.6),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.6),
    "flat": lambda im: ImageEnhance.Contrast(im).enhance(0.6),
    "gamma": lambda im: im.point(lambda x: int(255 * (x / 255) ** 0.6)),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "sepia": lambda im: ImageOps.colorize(ImageOps.grayscale(im), (40, 20, 0), (255, 240, 200)),
    "hue-60": _hue(60),
    "hue-180": _hue(180),
    "saturate": lambda im: ImageEnhance.Color(im).enhance(2.0),
    "white-balance": _white_balance,
}


def features(data: bytes) -> Features | None:
    try:
        return extract(data)
    except DecodeError:
        return None


def as_candidate(
    new: Features, stored: Features, policy: ColourPolicy, transform: int | None = None
) -> ColourCheck:
    """The check as the pipeline runs it: the signatures as stored, the candidate turned as
    the hasher's PDQ search finds it (unless ``transform`` names the turn)."""
    if transform is None:
        variant, _ = best_dihedral(new.pdq, stored.pdq.hash)
        transform = transform_of_candidate(variant)
    signature = ColourSignature.from_bytes(stored.colour.to_bytes())
    mine = ColourSignature.from_bytes(new.colour.to_bytes())
    return check(mine, signature, policy, transform)


def dev_report(root: Path, negatives: int, policy: ColourPolicy) -> None:
    files = dev_files(root)
    feats = [features(f.data) for f in files]
    rejected: dict[str, int] = {"duplicate": 0, "hard": 0, "negative": 0}
    total = dict.fromkeys(rejected, 0)
    wrong: list[tuple[str, str, ColourCheck]] = []
    for kind, i, j in pairs(files, negatives):
        new, stored = feats[i], feats[j]
        if new is None or stored is None:
            continue
        result = as_candidate(new, stored, policy)
        total[kind] += 1
        if result.rejected:
            rejected[kind] += 1
            if kind == "duplicate":
                wrong.append((files[i].name, files[j].name, result))
    print(f"\n== dev sets at {root}")
    for label, count in total.items():
        print(f"{label:>10} pairs: {count:5d}, rejected {rejected[label]:5d}")
    for name_a, name_b, r in wrong:
        print(f"  duplicate rejected: {name_a} ~ {name_b}: {r.reason}")


def photos(root: Path | None, generated: int) -> list[tuple[str, Image.Image]]:
    out: list[tuple[str, Image.Image]] = []
    suite = root / "unsplash-coenm-image-suite" if root else None
    if suite and suite.is_dir():
        out += [(p.stem, Image.open(p).convert("RGB")) for p in sorted(suite.glob("*.jpg"))]
    out += [(f"photo-{i}", synthetic.photo(700 + i)) for i in range(generated)]
    return out


def edits_report(originals: list[tuple[str, Image.Image]], policy: ColourPolicy) -> None:
    print(f"\n== colour edits of {len(originals)} photos (copies: none should be rejected)")
    worst: dict[str, tuple[float, float]] = {}
    rejected: dict[str, list[str]] = {k: [] for k in COLOUR_EDITS}
    for name, img in originals:
        original = features(synthetic.encode(img, quality=92))
        assert original is not None
        for edit, apply in COLOUR_EDITS.items():
            edited = features(synthetic.encode(apply(img), quality=85))
            assert edited is not None
            r = as_candidate(edited, original, policy)
            d, c = worst.get(edit, (0.0, 1.0))
            corr = 1.0 if r.lightness_correlation is None else r.lightness_correlation
            worst[edit] = (max(d, r.colour_distance), min(c, corr))
            if r.rejected:
                rejected[edit].append(name)
    for edit, (d, c) in worst.items():
        print(
            f"{edit:>14}: max colour distance {d:.3f}, min lightness correlation {c:+.2f},"
            f" rejected {len(rejected[edit])} {rejected[edit][:3]}"
        )


def wallpapers_report(count: int, policy: ColourPolicy) -> None:
    """Light/dark pairs as hash candidates found in their own orientation would arrive.

    (Their PDQ distance, 108-132 bits, is beyond the hasher's radius: in the pipeline
    they come as embedding candidates, after the verifier; bench/matcher_eval.py shows
    the matcher turning them down.)
    """
    print(f"\n== {count} light/dark wallpaper pairs (re-coloured designs: all should be rejected)")
    distances, correlations, rejected, copies_rejected = [], [], 0, 0
    for seed in range(count):
        light, dark = synthetic.wallpaper(seed), synthetic.wallpaper(seed, dark=True)
        fl = features(synthetic.encode(light, quality=90))
        fd = features(synthetic.encode(dark, quality=90))
        darker = features(synthetic.encode(COLOUR_EDITS["darker"](light), quality=90))
        assert fl is not None and fd is not None and darker is not None
        r = as_candidate(fd, fl, policy, transform=0)
        distances.append(r.colour_distance)
        correlations.append(-2.0 if r.lightness_correlation is None else r.lightness_correlation)
        rejected += r.rejected
        copies_rejected += as_candidate(darker, fl, policy, transform=0).rejected
    print(
        f"rejected {rejected}/{count}; colour distance min {min(distances):.3f}"
        f" median {np.median(distances):.3f}; lightness correlation max {max(correlations):+.2f}"
        f" median {np.median(correlations):+.2f}"
    )
    print(f"darkened copies of the light ones rejected: {copies_rejected}/{count}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--negatives", type=int, default=3000, help="sampled other pairs")
    parser.add_argument("--generated", type=int, default=20, help="generated photos")
    parser.add_argument("--wallpapers", type=int, default=40)
    args = parser.parse_args(argv)
    defaults = VerifierSettings.model_fields
    policy = ColourPolicy(
        min_lightness_correlation=float(defaults["min_lightness_correlation"].default),
        max_colour_distance=float(defaults["max_colour_distance"].default),
    )
    print(f"policy: {policy}")
    root = args.dev if args.dev.is_dir() else None
    if root:
        dev_report(root, args.negatives, policy)
    edits_report(photos(root, args.generated), policy)
    wallpapers_report(args.wallpapers, policy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
