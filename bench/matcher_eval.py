"""The matcher's verdicts on data: inliers and aligned residuals of copies vs other shots.

The evidence behind `DEDUP_MATCHER_MIN_INLIERS` and `DEDUP_MATCHER_MAX_RESIDUAL`. Every
pair goes through the pipeline's own path: the hasher's working copy of each file, the
matcher's features, RANSAC, alignment and verdict with the default settings.

- **edits** (copies: every one should be DUPLICATE): the required edits (crop, caption,
  border, resize, blur, greyscale, brightness, rotate-90, mirror, re-encode) and more
  (watermark, sticker, heavy JPEG, noise, sharpening, gamma, hue, sepia, letterbox,
  squashed, rotate-30, big crop, thumbnail, a combination), applied to real photos (the
  Unsplash suite of the dev sets, when present) and to generated scenes;
- **other shots** (never DUPLICATE): `dedup.synthetic.scene` seen from another camera
  position (the nearest objects move 12, 24, 40 px of 640; the background a sixth of
  that) and burst frames, each with its own sensor noise;
- **unrelated** generated pictures and light/dark wallpaper designs (REJECTED);
- **dev sets** (../shared/data/dev, skipped when absent): every duplicate pair, every
  hard negative (another shot of one scene: the stereo motorcycle pair, the desk shots,
  the coasters, ...) and a sample of other pairs.

    .venv/bin/python -m bench.matcher_eval [--dev ../shared/data/dev] [--photos 30]
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from bench.dev_sets import DEFAULT_DEV, dev_files, pairs
from dedup import synthetic
from dedup.v1.groups_pb2 import Verdict
from services.hasher.decode import DecodeError
from services.hasher.features import extract
from services.matcher.geometry import (
    Detector,
    ImageView,
    MatchParams,
    MatchResult,
    match,
    view_of_bytes,
)
from services.matcher.handler import MatchPolicy, judge
from services.matcher.settings import MatcherSettings

Edit = Callable[[Image.Image], Image.Image]
NAMES = {
    Verdict.VERDICT_DUPLICATE: "duplicate",
    Verdict.VERDICT_SIMILAR: "similar",
    Verdict.VERDICT_REJECTED: "rejected",
}


def _jpeg(quality: int) -> Edit:
    def reencode(img: Image.Image) -> Image.Image:
        return Image.open(io.BytesIO(synthetic.encode(img, quality=quality))).convert("RGB")

    return reencode


def _hue(degrees: int) -> Edit:
    def shift(img: Image.Image) -> Image.Image:
        h, s, v = img.convert("HSV").split()
        h = h.point(lambda x: (x + degrees * 256 // 360) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")

    return shift


def _watermark(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    draw.text((out.width // 4, out.height // 2), "(c) studio 2026", fill="white", font_size=40)
    return out


def _sticker(img: Image.Image) -> Image.Image:
    out = img.copy()
    r = min(out.size) // 6
    draw = ImageDraw.Draw(out)
    draw.ellipse((out.width - 3 * r, out.height - 3 * r, out.width - r, out.height - r), "gold")
    draw.text(
        (out.width // 20, out.height // 20), "SALE -50%", fill="red", font_size=out.height // 8
    )
    return out


def _noise(img: Image.Image) -> Image.Image:
    a = np.asarray(img, np.float32)
    a += np.random.default_rng(0).normal(0, 12, a.shape)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _crop(fraction: float) -> Edit:
    def crop(img: Image.Image) -> Image.Image:
        dx, dy = int(img.width * fraction / 2), int(img.height * fraction / 2)
        return img.crop((dx, dy, img.width - dx, img.height - dy))

    return crop


def _combination(img: Image.Image) -> Image.Image:
    img = synthetic.EDITS["caption"](ImageEnhance.Brightness(_crop(0.2)(img)).enhance(1.2))
    return img.resize((img.width * 2 // 3, img.height * 2 // 3))


REQUIRED: dict[str, Edit] = {
    "crop": _crop(0.2),
    "caption": synthetic.EDITS["caption"],
    "border": synthetic.EDITS["border"],
    "resize": synthetic.EDITS["resize-half"],
    "blur": synthetic.EDITS["blur"],
    "greyscale": synthetic.EDITS["grey"],
    "brightness": synthetic.EDITS["brighter"],
    "rotate-90": synthetic.EDITS["rotate-90"],
    "mirror": synthetic.EDITS["mirror"],
    "re-encode": _jpeg(60),
}
MORE: dict[str, Edit] = {
    "watermark": _watermark,
    "sticker": _sticker,
    "jpeg-q10": _jpeg(10),
    "noise": _noise,
    "sharpen": lambda im: im.filter(ImageFilter.UnsharpMask(3, 200)),
    "blur-4": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "gamma": lambda im: im.point(lambda x: int(255 * (x / 255) ** 0.6)),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.6),
    "hue-60": _hue(60),
    "sepia": lambda im: ImageOps.colorize(ImageOps.grayscale(im), (40, 20, 0), (255, 240, 200)),
    "letterbox": lambda im: ImageOps.pad(im, (im.width, im.width), color=(0, 0, 0)),
    "squashed": lambda im: im.resize((im.height, im.height)),
    "flip-vertical": ImageOps.flip,
    "rotate-30": lambda im: im.rotate(30, expand=True),
    "crop-50": _crop(0.5),
    "thumbnail": lambda im: im.resize((128, max(1, 128 * im.height // im.width))),
    "combination": _combination,
}


@dataclass(frozen=True)
class Outcome:
    cls: str  # edit, other-shot, unrelated, dev:duplicate, dev:hard, dev:negative
    label: str  # the edit, the view, or the file pair
    result: MatchResult
    verdict: Verdict.ValueType


class Bench:
    def __init__(self, params: MatchParams, policy: MatchPolicy) -> None:
        self.params, self.policy = params, policy
        self.outcomes: list[Outcome] = []

    def view(self, image: Image.Image | bytes, quality: int = 85) -> ImageView | None:
        data = image if isinstance(image, bytes) else synthetic.encode(image, quality=quality)
        try:
            return view_of_bytes(extract(data).working_copy, self.params)
        except DecodeError:
            return None

    def add(self, cls: str, label: str, new: ImageView | None, old: ImageView | None) -> None:
        if new is None or old is None:
            return
        result = match(new, old, self.params)
        self.outcomes.append(Outcome(cls, label, result, judge(result, self.policy)[0]))


def real_photos(root: Path | None, count: int) -> list[tuple[str, Image.Image]]:
    suite = root / "unsplash-coenm-image-suite" if root else None
    if not (suite and suite.is_dir()):
        return []
    paths = sorted(suite.glob("*.jpg"))[:count]
    return [(p.stem, Image.open(p).convert("RGB")) for p in paths]


def run_edits(bench: Bench, originals: Iterable[tuple[str, Image.Image]]) -> None:
    for _, original in originals:
        base = bench.view(original, quality=92)
        for edit, apply in {**REQUIRED, **MORE}.items():
            bench.add("edit", edit, bench.view(apply(original), quality=80), base)


def run_shots(bench: Bench, scenes: int) -> None:
    for seed in range(scenes):
        base = bench.view(synthetic.scene(500 + seed))
        for view in (12, 24, 40):
            shot = synthetic.scene(500 + seed, view=view, noise_seed=seed + 1)
            bench.add("other-shot", f"view-{view}", bench.view(shot), base)
        for frame in (1, 2, 3):
            bench.add(
                "other-shot", f"burst-{frame}", bench.view(synthetic.burst(500 + seed, frame)), base
            )
        still = synthetic.scene(500 + seed, noise_seed=10_000 + seed)
        bench.add("same-view", "new-noise", bench.view(still), base)
        bench.add("unrelated", "scene", bench.view(synthetic.scene(600 + seed)), base)
        dark, light = synthetic.wallpaper(seed, dark=True), synthetic.wallpaper(seed)
        bench.add("unrelated", "light/dark", bench.view(dark), bench.view(light))


def run_dev(bench: Bench, root: Path, negatives: int) -> None:
    files = dev_files(root)
    views = [bench.view(f.data) for f in files]
    for kind, i, j in pairs(files, negatives):
        label = f"{files[i].name} ~ {files[j].name}"
        bench.add(f"dev:{kind}", label, views[i], views[j])


def _q(values: list[float], q: float) -> str:
    return f"{np.quantile(values, q):.3f}" if values else "  -  "


def report(bench: Bench) -> None:
    by_class: dict[str, list[Outcome]] = defaultdict(list)
    for o in bench.outcomes:
        by_class[o.cls].append(o)
    p = bench.policy
    print(
        f"\npolicy: DUPLICATE if inliers >= {p.min_inliers} and residual <= {p.max_residual}"
        f" and displaced <= {p.max_displaced}"
    )
    print(
        f"{'class':>14} {'pairs':>6} | {'duplicate':>9} {'similar':>7} {'rejected':>8} |"
        f" residual of matched pairs: {'min':>5} {'p50':>5} {'p99':>5} {'max':>5}"
    )
    for cls, outcomes in by_class.items():
        counts = Counter(NAMES[o.verdict] for o in outcomes)
        res = [
            o.result.residual
            for o in outcomes
            if o.result.residual is not None and o.result.inliers >= p.min_inliers
        ]
        print(
            f"{cls:>14} {len(outcomes):>6} | {counts['duplicate']:>9} {counts['similar']:>7}"
            f" {counts['rejected']:>8} |{'':>28}{_q(res, 0)} {_q(res, 0.5)} {_q(res, 0.99)}"
            f" {_q(res, 1)}"
        )
    displacement(by_class, p)
    print("\nedits, per kind: duplicate / pairs, min inliers, max residual, max displaced")
    per_edit: dict[str, list[Outcome]] = defaultdict(list)
    for o in by_class.get("edit", []):
        per_edit[o.label].append(o)
    for edit, outcomes in per_edit.items():
        dup = sum(o.verdict == Verdict.VERDICT_DUPLICATE for o in outcomes)
        res = [o.result.residual for o in outcomes if o.result.residual is not None]
        fewest = min(o.result.inliers for o in outcomes)
        moved = [o.result.displaced for o in outcomes if o.result.displaced is not None]
        print(
            f"{edit:>14}: {dup:>3}/{len(outcomes):<3} inliers >= {fewest:>4}"
            f"  residual <= {max(res) if res else float('nan'):.3f}"
            f"  displaced <= {max(moved) if moved else float('nan'):.3f}"
        )
    shots: dict[str, list[Outcome]] = defaultdict(list)
    for o in by_class.get("other-shot", []):
        shots[o.label].append(o)
    print("\nother shots, per camera move: not duplicate / pairs, residual/displaced")
    for label, outcomes in shots.items():
        ok = sum(o.verdict != Verdict.VERDICT_DUPLICATE for o in outcomes)
        pairs_ = sorted((o.result.residual or 0.0, o.result.displaced or 0.0) for o in outcomes)
        print(
            f"{label:>14}: {ok:>3}/{len(outcomes):<3} "
            + " ".join(f"{r:.2f}/{d:.2f}" for r, d in pairs_)
        )
    separation(by_class, p)
    failures(bench.outcomes)


def displacement(by_class: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    """The displaced fraction of every class's pairs that pass the residual check."""
    print(
        f"\ndisplaced fraction of pairs with inliers >= {p.min_inliers} and residual <="
        f" {p.max_residual}: {'n':>5} {'min':>5} {'p50':>5} {'p90':>5} {'p99':>5} {'max':>5}"
        f"  > {p.max_displaced}"
    )
    for cls, outcomes in by_class.items():
        moved = [
            o.result.displaced
            for o in outcomes
            if o.result.displaced is not None
            and o.result.inliers >= p.min_inliers
            and o.result.residual is not None
            and o.result.residual <= p.max_residual
        ]
        over = sum(d > p.max_displaced for d in moved)
        print(
            f"{cls:>60}: {len(moved):>5} {_q(moved, 0)} {_q(moved, 0.5)} {_q(moved, 0.9)}"
            f" {_q(moved, 0.99)} {_q(moved, 1)}  {over:>3}"
        )


def separation(by_class: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    def residuals(classes: tuple[str, ...]) -> list[float]:
        return [
            o.result.residual
            for c in classes
            for o in by_class.get(c, [])
            if o.result.residual is not None and o.result.inliers >= p.min_inliers
        ]

    copies, shots = residuals(("edit", "dev:duplicate")), residuals(("dev:hard",))
    synthetic_shots = residuals(("other-shot",))
    negatives = [
        o.result.inliers for c in ("unrelated", "dev:negative") for o in by_class.get(c, [])
    ]
    print("\nseparation")
    if copies:
        print(f"  copies (edits + dev duplicates) matched: max residual {max(copies):.3f}")
    if shots:
        print(f"  dev hard negatives (real other shots) matched: min residual {min(shots):.3f}")
    if synthetic_shots:
        print(
            f"  synthetic other shots: min residual {min(synthetic_shots):.3f},"
            f" median {np.median(synthetic_shots):.3f}"
        )
    if negatives:
        print(f"  unrelated pairs: max inliers {max(negatives)} (threshold {p.min_inliers})")


def failures(outcomes: list[Outcome]) -> None:
    wrong = [
        o
        for o in outcomes
        if (o.cls in ("edit", "dev:duplicate") and o.verdict != Verdict.VERDICT_DUPLICATE)
        or (
            o.cls not in ("edit", "dev:duplicate", "same-view")
            and o.verdict == Verdict.VERDICT_DUPLICATE
        )
    ]
    print(f"\nwrong verdicts: {len(wrong)}")
    for o in wrong[:40]:
        r = o.result
        residual = "-" if r.residual is None else f"{r.residual:.3f}"
        moved = "-" if r.displaced is None else f"{r.displaced:.3f}"
        print(
            f"  {o.cls:>13} {NAMES[o.verdict]:>9}: {o.label}"
            f" (inliers {r.inliers}/{r.matches}, residual {residual}, displaced {moved})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--photos", type=int, default=30, help="real photos to edit")
    parser.add_argument("--scenes", type=int, default=10, help="generated scenes")
    parser.add_argument("--negatives", type=int, default=1000, help="sampled dev pairs")
    defaults = {k: f.default for k, f in MatcherSettings.model_fields.items()}
    for name in ("detector", "max_features", "min_side", "ratio", "ransac_threshold"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(defaults[name]))
    for name in ("min_inliers", "max_residual", "max_displaced"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(defaults[name]))
    args = parser.parse_args(argv)
    chosen = {k: v if (v := getattr(args, k, None)) is not None else defaults[k] for k in defaults}
    params = MatchParams(
        detector=Detector(chosen["detector"]),
        max_features=chosen["max_features"],
        min_side=chosen["min_side"],
        ratio=chosen["ratio"],
        ransac_threshold=chosen["ransac_threshold"],
    )
    policy = MatchPolicy(
        min_inliers=chosen["min_inliers"],
        max_residual=chosen["max_residual"],
        max_displaced=chosen["max_displaced"],
    )
    bench = Bench(params, policy)
    root = args.dev if args.dev.is_dir() else None
    started = time.perf_counter()
    originals = real_photos(root, args.photos)
    originals += [(f"scene-{i}", synthetic.scene(700 + i)) for i in range(args.scenes // 2)]
    originals += [(f"photo-{i}", synthetic.photo(800 + i)) for i in range(args.scenes // 2)]
    run_edits(bench, originals)
    run_shots(bench, args.scenes)
    if root:
        run_dev(bench, root, args.negatives)
    report(bench)
    elapsed = time.perf_counter() - started
    print(f"\n{len(bench.outcomes)} pairs in {elapsed:.0f} s ({params.detector})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
