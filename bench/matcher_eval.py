"""The matcher's verdicts on data: inliers and aligned residuals of copies vs other shots.

The evidence behind `DEDUP_MATCHER_MIN_INLIERS` and `DEDUP_MATCHER_MAX_RESIDUAL`. Every
pair goes through the pipeline's own path: the hasher's working copy of each file, the
matcher's decision with the default settings (services/matcher/decide.py: the aligned-copy
shortcut on the hasher's PDQ distance and turn, then features, RANSAC, alignment), timed
in process CPU per pair.

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
        [--compare] [--survey] [--verdicts FILE]

``--compare``: the reference too (every check on every pair, brute-force matching, no
shortcut: the matcher as it was), interleaved pair by pair, its verdicts and CPU beside
the default's. ``--survey``: the aligned-copy shortcut on every pair whatever its PDQ
distance and aspect ratios. ``--verdicts FILE``: every pair's verdict, test, inliers and
residual, a line each in the run's order (diff two versions' files: the same verdicts?).
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from bench.dev_sets import DEFAULT_DEV, dev_files, pairs
from dedup import synthetic
from dedup.v1.groups_pb2 import Verdict
from services.hasher.decode import DecodeError
from services.hasher.features import extract
from services.hasher.handler import transform_of_candidate
from services.hasher.hashes import PdqHash, best_dihedral
from services.matcher.decide import Check, Decision, HashHint, decide
from services.matcher.geometry import (
    Alignment,
    DescriptorMatching,
    Detector,
    ImageView,
    MatchParams,
    MatchPolicy,
    aspect_gap,
    check_alignment,
    match,
    turn_and_scale,
    view_of_bytes,
)
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
class Side:
    """One image as the matcher sees it: its view, and the hasher's PDQ hashes."""

    view: ImageView
    pdq: PdqHash


@dataclass(frozen=True)
class Surveyed:
    """The aligned-copy shortcut tried on a pair whatever its PDQ distance and aspect."""

    distance: int
    aspect_gap: float
    aligned: Alignment

    def accepted(self, p: MatchPolicy, residual: float) -> bool:
        a = self.aligned
        if a.residual is None or a.residual > residual:
            return False
        return a.displaced is None or a.displaced <= p.max_displaced


@dataclass(frozen=True)
class Outcome:
    cls: str  # edit, other-shot, unrelated, dev:duplicate, dev:hard, dev:negative
    label: str  # the edit, the view, or the file pair
    hint: HashHint
    decision: Decision  # now: the cheapest test first
    cpu_ms: float
    reference: Decision | None = None  # every check on every pair, as before
    reference_cpu_ms: float = 0.0
    # The edge cases of descriptor matching: inliers of the full path now, whatever the
    # shortcut decided (None: not one of RECALL_EDITS, or no reference).
    full_path_inliers: int | None = None

    @property
    def verdict(self) -> Verdict.ValueType:
        return self.decision.verdict


# The reference: every check on every pair, brute-force descriptor matching, no shortcut.
def reference_of(params: MatchParams) -> MatchParams:
    return replace(params, descriptor_matching=DescriptorMatching.BRUTE_FORCE, skip_decided=False)


# The edits that keep fewest features in common: descriptor matching's recall is measured
# on them.
RECALL_EDITS = ("crop-50", "blur-4", "thumbnail", "rotate-30")


def timed(run: Callable[[], Decision]) -> tuple[Decision, float]:
    """The decision and the process CPU time it took, in ms."""
    started = time.process_time()
    decision = run()
    return decision, (time.process_time() - started) * 1000


class Bench:
    def __init__(
        self, params: MatchParams, policy: MatchPolicy, *, compare: bool, survey: bool
    ) -> None:
        self.params, self.policy = params, policy
        self.reference = reference_of(params) if compare else None
        self.survey = survey
        self.outcomes: list[Outcome] = []
        # Per working copy: (decode and view, both orientations' features), CPU ms.
        self.view_ms: list[tuple[float, float]] = []
        # With survey: the shortcut on every pair.
        self.surveyed: list[Surveyed] = []

    def view(self, image: Image.Image | bytes, quality: int = 85) -> Side | None:
        data = image if isinstance(image, bytes) else synthetic.encode(image, quality=quality)
        try:
            features = extract(data)
        except DecodeError:
            return None
        started = time.process_time()
        view = view_of_bytes(features.working_copy, self.params)
        decoded = time.process_time()
        # Computed here, not in the first pair that needs them: per-pair times compare alike.
        _ = view.plain, view.mirrored
        self.view_ms.append(((decoded - started) * 1000, (time.process_time() - decoded) * 1000))
        return Side(view, features.pdq)

    def add(self, cls: str, label: str, new: Side | None, old: Side | None) -> None:
        if new is None or old is None:
            return
        variant, distance = best_dihedral(new.pdq, old.pdq.hash)
        hint = HashHint(distance, transform_of_candidate(variant))
        if self.survey:
            self.surveyed.append(self._aligned(new.view, old.view, hint))

        def now() -> Decision:
            return decide(new.view, old.view, self.params, self.policy, hint)

        if self.reference is None:
            decision, cpu_ms = timed(now)
            self.outcomes.append(Outcome(cls, label, hint, decision, cpu_ms))
            return
        reference = self.reference

        def before() -> Decision:
            return decide(new.view, old.view, reference, self.policy)

        # Interleaved, in alternating order: the machine's load hits both alike.
        if len(self.outcomes) % 2:
            (decision, cpu_ms), (ref, ref_ms) = timed(now), timed(before)
        else:
            (ref, ref_ms), (decision, cpu_ms) = timed(before), timed(now)
        full = None
        if cls == "edit" and label in RECALL_EDITS:
            full = match(new.view, old.view, self.params, self.policy).inliers
        self.outcomes.append(Outcome(cls, label, hint, decision, cpu_ms, ref, ref_ms, full))

    def _aligned(self, new: ImageView, old: ImageView, hint: HashHint) -> Surveyed:
        """The shortcut whatever the PDQ distance and the aspect ratios."""
        transform = turn_and_scale(new, old, hint.turn, np.inf)
        assert transform is not None
        aligned = check_alignment(new, old, transform, self.params, self.policy.max_residual)
        return Surveyed(hint.distance, aspect_gap(new, old, hint.turn), aligned)


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


def _matched(d: Decision) -> bool:
    """Aligned with a residual measured: DUPLICATE or SIMILAR with a number."""
    return d.verdict != Verdict.VERDICT_REJECTED and d.residual is not None


def report(bench: Bench) -> None:
    by_class: dict[str, list[Outcome]] = defaultdict(list)
    for o in bench.outcomes:
        by_class[o.cls].append(o)
    p = bench.policy
    print(
        f"\npolicy: DUPLICATE if inliers >= {p.min_inliers} and residual <= {p.max_residual}"
        f" and displaced <= {p.max_displaced}; aligned copies: PDQ <= {p.aligned_max_pdq},"
        f" aspect within {p.aligned_aspect_tolerance}, residual <= {p.aligned_max_residual}"
    )
    verdicts(by_class, p)
    changes(bench.outcomes)
    costs(by_class)
    decoded, features = (float(np.mean(ms)) for ms in zip(*bench.view_ms, strict=True))
    no_features = sum(o.decision.test == Check.ALIGNED_RESIDUAL for o in bench.outcomes)
    print(
        f"\nper working copy: decode and view {decoded:.1f} ms, features (as it is and"
        f" mirrored) {features:.1f} ms, computed on first use: {no_features} of"
        f" {len(bench.outcomes)} pairs need none"
    )
    displacement(by_class, p)
    print("\nedits, per kind: duplicate / pairs, min inliers, max residual, max displaced")
    per_edit: dict[str, list[Outcome]] = defaultdict(list)
    for o in by_class.get("edit", []):
        per_edit[o.label].append(o)
    for edit, outcomes in per_edit.items():
        dup = sum(o.verdict == Verdict.VERDICT_DUPLICATE for o in outcomes)
        res = [o.decision.residual for o in outcomes if o.decision.residual is not None]
        inliers = [o.decision.inliers for o in outcomes if o.decision.inliers is not None]
        moved = [o.decision.displaced for o in outcomes if o.decision.displaced is not None]
        aligned = sum(o.decision.test == Check.ALIGNED_RESIDUAL for o in outcomes)
        print(
            f"{edit:>14}: {dup:>3}/{len(outcomes):<3} inliers >= {min(inliers, default=-1):>4}"
            f"  residual <= {max(res, default=float('nan')):.3f}"
            f"  displaced <= {max(moved, default=float('nan')):.3f}  aligned copies {aligned}"
        )
    recall(per_edit, p)
    shots: dict[str, list[Outcome]] = defaultdict(list)
    for o in by_class.get("other-shot", []):
        shots[o.label].append(o)
    print("\nother shots, per camera move: not duplicate / pairs, residual/displaced")
    for label, outcomes in shots.items():
        ok = sum(o.verdict != Verdict.VERDICT_DUPLICATE for o in outcomes)
        pairs_ = sorted((o.decision.residual or 0.0, o.decision.displaced or 0.0) for o in outcomes)
        print(
            f"{label:>14}: {ok:>3}/{len(outcomes):<3} "
            + " ".join(f"{r:.2f}/{d:.2f}" for r, d in pairs_)
        )
    separation(by_class, p)
    failures(bench.outcomes)


def recall(per_edit: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    """Inliers of the full path on the edge cases: LSH now against brute force before."""
    print("\ndescriptor matching, full path: inliers min / p10 / p50, before (brute force) -> now")
    for edit in RECALL_EDITS:
        pairs_ = [
            (o.reference.inliers, o.full_path_inliers)
            for o in per_edit.get(edit, [])
            if o.reference and o.reference.inliers is not None and o.full_path_inliers is not None
        ]
        if not pairs_:
            continue
        before, now = (list(x) for x in zip(*pairs_, strict=True))

        def stat(values: list[int]) -> str:
            low = sum(v < p.min_inliers for v in values)
            return (
                f"{min(values):>4} / {np.quantile(values, 0.1):>5.0f} / {np.median(values):>5.0f}"
                f" ({low} under {p.min_inliers})"
            )

        print(f"{edit:>14}: {stat(before)} -> {stat(now)}")


def _counts(decisions: Iterable[Decision]) -> Counter[str]:
    return Counter(NAMES[d.verdict] for d in decisions)


def verdicts(by_class: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    compare = any(o.reference is not None for os_ in by_class.values() for o in os_)
    print(
        f"{'class':>14} {'pairs':>6} | {'duplicate':>9} {'similar':>7} {'rejected':>8} |"
        + (f" {'before: dup':>11} {'sim':>4} {'rej':>4} |" if compare else "")
        + f" residual of matched pairs: {'min':>5} {'p50':>5} {'p99':>5} {'max':>5}"
    )
    for cls, outcomes in by_class.items():
        counts = _counts(o.decision for o in outcomes)
        before = _counts(o.reference for o in outcomes if o.reference is not None)
        res = [
            o.decision.residual
            for o in outcomes
            if _matched(o.decision) and o.decision.residual is not None
        ]
        print(
            f"{cls:>14} {len(outcomes):>6} | {counts['duplicate']:>9} {counts['similar']:>7}"
            f" {counts['rejected']:>8} |"
            + (
                f" {before['duplicate']:>11} {before['similar']:>4} {before['rejected']:>4} |"
                if compare
                else ""
            )
            + f"{'':>27}{_q(res, 0)} {_q(res, 0.5)} {_q(res, 0.99)} {_q(res, 1)}"
        )


def changes(outcomes: list[Outcome]) -> None:
    """Verdicts that differ from the reference (every check on every pair)."""
    changed = [o for o in outcomes if o.reference is not None and o.reference.verdict != o.verdict]
    if not any(o.reference is not None for o in outcomes):
        return
    moves = Counter(
        (o.cls, NAMES[o.reference.verdict], NAMES[o.verdict])
        for o in changed
        if o.reference is not None
    )
    print(f"\nverdicts changed against the reference: {len(changed)}")
    for (cls, was, now), n in sorted(moves.items()):
        print(f"  {cls:>13}: {was} -> {now}: {n}")
    for o in changed[:20]:
        assert o.reference is not None
        print(
            f"    {o.cls} {o.label}: {NAMES[o.reference.verdict]} ({o.reference.test},"
            f" residual {o.reference.residual}, displaced {o.reference.displaced})"
            f" -> {NAMES[o.verdict]} ({o.decision.test}, residual {o.decision.residual},"
            f" displaced {o.decision.displaced}, PDQ {o.hint.distance})"
        )


def costs(by_class: dict[str, list[Outcome]]) -> None:
    """Process CPU ms per pair: by class (before and now), by the test that decided."""
    every = [o for os_ in by_class.values() for o in os_]
    compare = any(o.reference is not None for o in every)
    print(
        "\nCPU ms per pair (process time, views excluded), mean / p50"
        + (": before -> now" if compare else "")
    )

    def stat(values: list[float]) -> str:
        return f"{np.mean(values):6.1f} / {np.median(values):5.1f}" if values else "   -"

    for cls, outcomes in [*by_class.items(), ("all", every)]:
        now = [o.cpu_ms for o in outcomes]
        before = [o.reference_cpu_ms for o in outcomes if o.reference is not None]
        ratio = f"  x{np.mean(before) / np.mean(now):.1f}" if before else ""
        print(f"{cls:>14}: " + (f"{stat(before)} -> " if before else "") + stat(now) + ratio)
    print(f"\nby the test that decided (now): {'share':>6} {'ms mean':>8} {'p50':>6} {'p99':>6}")
    tests = Counter(o.decision.test for o in every)
    for test, n in tests.most_common():
        ms = [o.cpu_ms for o in every if o.decision.test == test]
        print(
            f"{test:>30}: {n / len(every):6.1%} {np.mean(ms):8.1f} {np.median(ms):6.1f}"
            f" {np.quantile(ms, 0.99):6.1f}"
        )
    if compare:
        print(f"\nby the test that decided (before): {'share':>6} {'ms mean':>8} {'p50':>6}")
        before_tests = Counter(o.reference.test for o in every if o.reference is not None)
        for test, n in before_tests.most_common():
            ms = [o.reference_cpu_ms for o in every if o.reference and o.reference.test == test]
            print(f"{test:>30}: {n / len(every):6.1%} {np.mean(ms):8.1f} {np.median(ms):6.1f}")


def displacement(by_class: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    """The displaced fraction of every class's pairs that pass the residual check (where
    it was measured: only residuals in the range where other shots hide need it)."""
    print(
        f"\ndisplaced fraction of pairs with residual <= {p.max_residual}, where measured:"
        f" {'n':>5} {'min':>5} {'p50':>5} {'p90':>5} {'p99':>5} {'max':>5}  > {p.max_displaced}"
    )
    for cls, outcomes in by_class.items():
        moved = [
            o.decision.displaced
            for o in outcomes
            if o.decision.displaced is not None
            and o.decision.residual is not None
            and o.decision.residual <= p.max_residual
        ]
        over = sum(d > p.max_displaced for d in moved)
        print(
            f"{cls:>60}: {len(moved):>5} {_q(moved, 0)} {_q(moved, 0.5)} {_q(moved, 0.9)}"
            f" {_q(moved, 0.99)} {_q(moved, 1)}  {over:>3}"
        )


def separation(by_class: dict[str, list[Outcome]], p: MatchPolicy) -> None:
    def residuals(classes: tuple[str, ...]) -> list[float]:
        return [
            o.decision.residual
            for c in classes
            for o in by_class.get(c, [])
            if _matched(o.decision) and o.decision.residual is not None
        ]

    copies, shots = residuals(("edit", "dev:duplicate")), residuals(("dev:hard",))
    synthetic_shots = residuals(("other-shot",))
    negatives = [
        o.decision.inliers
        for c in ("unrelated", "dev:negative")
        for o in by_class.get(c, [])
        if o.decision.inliers is not None
    ]
    before = [
        o.reference.inliers
        for c in ("unrelated", "dev:negative")
        for o in by_class.get(c, [])
        if o.reference is not None and o.reference.inliers is not None
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
    if before:
        print(f"  unrelated pairs, reference (brute force): max inliers {max(before)}")


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
        d = o.decision
        residual = "-" if d.residual is None else f"{d.residual:.3f}"
        moved = "-" if d.displaced is None else f"{d.displaced:.3f}"
        print(
            f"  {o.cls:>13} {NAMES[o.verdict]:>9}: {o.label} ({d.test}: inliers"
            f" {d.inliers}/{d.matches}, residual {residual}, displaced {moved})"
        )


def survey(bench: Bench) -> None:
    """The aligned-copy shortcut on every pair whatever its PDQ distance and aspect: how
    many of each class it would call DUPLICATE at each PDQ distance, aspect gap and
    residual bound (the evidence behind aligned_max_pdq, aligned_aspect_tolerance and
    aligned_max_residual)."""
    by_class: dict[str, list[Surveyed]] = defaultdict(list)
    for o, surveyed in zip(bench.outcomes, bench.surveyed, strict=True):
        by_class[o.cls].append(surveyed)
    p = bench.policy
    bounds, distances = (0.05, 0.1, 0.2), (16, 31, 48, 64, 80)
    print(
        f"\naligned copies, every pair: tried (PDQ <= d, aspect gap <="
        f" {p.aligned_aspect_tolerance}): DUPLICATE at residual <= {'/'.join(map(str, bounds))}"
    )
    print(f"{'class':>14} {'pairs':>6} | " + " | ".join(f"{'d<=' + str(d):>14}" for d in distances))
    for cls, rows in by_class.items():
        cells = []
        for d in distances:
            tried = [
                s for s in rows if s.distance <= d and s.aspect_gap <= p.aligned_aspect_tolerance
            ]
            accepted = "/".join(str(sum(s.accepted(p, b) for s in tried)) for b in bounds)
            cells.append(f"{len(tried):>4}:{accepted:>9}")
        print(f"{cls:>14} {len(rows):>6} | " + " | ".join(cells))
    gaps = (0.005, 0.01, 0.02, 0.05, np.inf)
    print(
        f"\nby aspect gap (PDQ <= {p.aligned_max_pdq}): tried: DUPLICATE at residual <="
        f" {p.aligned_max_residual}"
    )
    print(f"{'class':>14} | " + " | ".join(f"{'gap<=' + str(g):>12}" for g in gaps))
    for cls, rows in by_class.items():
        cells = []
        for g in gaps:
            tried = [s for s in rows if s.distance <= p.aligned_max_pdq and s.aspect_gap <= g]
            n_accepted = sum(s.accepted(p, p.aligned_max_residual) for s in tried)
            cells.append(f"{len(tried):>5}:{n_accepted:>6}")
        print(f"{cls:>14} | " + " | ".join(cells))
    shots = [
        s.aligned.residual
        for cls in ("other-shot", "dev:hard")
        for s in by_class.get(cls, [])
        if s.aligned.residual is not None and s.aspect_gap <= p.aligned_aspect_tolerance
    ]
    if shots:
        print(f"  other shots aligned by the turn: min residual {min(shots):.3f}")


def write_verdicts(outcomes: Iterable[Outcome], path: Path) -> None:
    """A line per pair, in the run's (deterministic) order."""
    lines = (
        f"{o.cls}\t{o.label}\t{NAMES[o.verdict]}\t{o.decision.test}\t{o.decision.inliers}"
        f"\t{o.decision.residual}"
        for o in outcomes
    )
    path.write_text("".join(line + "\n" for line in lines))


def _flag(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--photos", type=int, default=30, help="real photos to edit")
    parser.add_argument("--scenes", type=int, default=10, help="generated scenes")
    parser.add_argument("--negatives", type=int, default=1000, help="sampled dev pairs")
    parser.add_argument(
        "--compare", action="store_true", help="also run the reference (every check) per pair"
    )
    parser.add_argument(
        "--survey", action="store_true", help="the aligned-copy shortcut on every pair"
    )
    parser.add_argument("--verdicts", type=Path, help="write every pair's verdict to this file")
    defaults = {k: f.default for k, f in MatcherSettings.model_fields.items()}
    param_names = (
        "detector",
        "max_features",
        "first_features",
        "min_side",
        "ratio",
        "ransac_threshold",
        "descriptor_matching",
        "screen_inliers",
        "refine_until",
        "flow_above",
        "skip_decided",
    )
    policy_names = tuple(f.name for f in fields(MatchPolicy))
    for name in (*param_names, *policy_names):
        kind = type(defaults[name])
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_flag if kind is bool else kind,
            metavar=kind.__name__,
        )
    args = parser.parse_args(argv)
    chosen = {k: v if (v := getattr(args, k, None)) is not None else defaults[k] for k in defaults}
    params = MatchParams(
        detector=Detector(chosen["detector"]),
        descriptor_matching=DescriptorMatching(chosen["descriptor_matching"]),
        **{k: chosen[k] for k in param_names if k not in ("detector", "descriptor_matching")},
    )
    policy = MatchPolicy(**{k: chosen[k] for k in policy_names})
    bench = Bench(params, policy, compare=args.compare, survey=args.survey)
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
    if args.survey:
        survey(bench)
    if args.verdicts:
        write_verdicts(bench.outcomes, args.verdicts)
    elapsed = time.perf_counter() - started
    print(f"\n{len(bench.outcomes)} pairs in {elapsed:.0f} s ({params.detector})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
