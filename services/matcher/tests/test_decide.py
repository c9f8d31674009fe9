"""The cheapest test first: aligned copies without features, the checks skipped where
they cannot change the verdict, and the test that decided named."""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from dedup import synthetic
from dedup.imaging import DIHEDRAL, INVERSE
from dedup.v1.groups_pb2 import Verdict
from services.hasher.features import extract
from services.matcher import geometry
from services.matcher.decide import Check, HashHint, decide, judge
from services.matcher.geometry import (
    DescriptorMatching,
    ImageView,
    MatchParams,
    MatchPolicy,
    match,
    turn_and_scale,
    view_of_bytes,
)
from services.matcher.tests.images import hint, working_copy

PARAMS = MatchParams()
POLICY = MatchPolicy()
# Every check on every pair, as before the cheapest-test-first path.
EVERY_CHECK = replace(
    PARAMS, skip_decided=False, descriptor_matching=DescriptorMatching.BRUTE_FORCE
)
DUPLICATE, SIMILAR, REJECTED = (
    Verdict.VERDICT_DUPLICATE,
    Verdict.VERDICT_SIMILAR,
    Verdict.VERDICT_REJECTED,
)


@functools.cache
def view(picture: str, edit: str | None = None) -> ImageView:
    return view_of_bytes(working_copy(picture, edit), PARAMS)


@pytest.mark.parametrize("edit", ["re-encode", "resize", "grey", "rotate-90", "mirror", "blur"])
def test_an_aligned_copy_needs_no_features(edit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_features(*_: object) -> None:
        raise AssertionError("features matched for an aligned copy")

    monkeypatch.setattr(geometry, "_estimate", no_features)
    new = view_of_bytes(working_copy("scene", edit), PARAMS)
    old = view_of_bytes(working_copy("scene"), PARAMS)
    decision = decide(new, old, PARAMS, POLICY, hint(("scene", edit), ("scene", None)))
    assert new.computed == old.computed == {}  # no features computed for either image
    assert (decision.verdict, decision.test) == (DUPLICATE, Check.ALIGNED_RESIDUAL), decision.reason
    assert decision.inliers is None  # not measured: no features
    assert decision.residual is not None and decision.residual <= POLICY.aligned_max_residual
    assert "PDQ distance" in decision.reason


def test_the_hashes_turn_maps_the_candidate_onto_the_new_image() -> None:
    new, old = view("scene", "rotate-90"), view("scene")
    turn = DIHEDRAL.index("rot90")  # the candidate turned a quarter counter-clockwise
    assert hint(("scene", "rotate-90"), ("scene", None)).turn == turn
    transform = turn_and_scale(new, old, turn, POLICY.aligned_aspect_tolerance)
    assert transform is not None
    w = old.grey.shape[1]
    # The candidate's top-right corner becomes the new image's top-left corner.
    corner = transform @ np.array([w - 0.5, -0.5, 1.0])
    assert corner == pytest.approx([-0.5, -0.5], abs=1e-3)
    # The other way round, the inverse turn.
    back = turn_and_scale(old, new, INVERSE[turn], POLICY.aligned_aspect_tolerance)
    assert back is not None
    assert back @ np.append(transform @ np.array([10.0, 20.0, 1.0]), 1.0) == pytest.approx(
        [10.0, 20.0], abs=1e-3
    )


def test_another_aspect_ratio_is_not_one_turn_and_a_scale_away() -> None:
    new, old = view("scene", "crop"), view("scene")
    assert turn_and_scale(new, old, 0, POLICY.aligned_aspect_tolerance) is None
    decision = decide(new, old, PARAMS, POLICY, HashHint(0, 0))
    assert (decision.verdict, decision.test) == (DUPLICATE, Check.RANSAC_RESIDUAL)


@pytest.mark.parametrize("turn", [0, DIHEDRAL.index("rot180"), DIHEDRAL.index("flip_lr")])
def test_the_shortcut_never_calls_another_shot_a_duplicate(turn: int) -> None:
    # Hashes close or not, a wrong turn or another shot falls through to the full path.
    decision = decide(view("another-shot"), view("scene"), PARAMS, POLICY, HashHint(0, turn))
    assert decision.verdict == SIMILAR and decision.test != Check.ALIGNED_RESIDUAL


def test_a_far_hash_distance_takes_the_full_path() -> None:
    close = hint(("scene", "resize"), ("scene", None))
    far = HashHint(POLICY.aligned_max_pdq + 1, close.turn)
    decision = decide(view("scene", "resize"), view("scene"), PARAMS, POLICY, far)
    assert (decision.verdict, decision.test) == (DUPLICATE, Check.RANSAC_RESIDUAL)
    assert decision.inliers is not None and decision.inliers >= POLICY.min_inliers


@pytest.mark.parametrize(
    ("new", "old", "verdict", "test"),
    [
        (("scene", "caption"), ("scene", None), DUPLICATE, Check.RANSAC_RESIDUAL),
        (("another-shot", None), ("scene", None), SIMILAR, Check.RESIDUAL),
        (("unrelated", None), ("scene", None), REJECTED, Check.RANSAC_INLIERS),
    ],
)
def test_every_decision_names_its_test(
    new: tuple[str, str | None],
    old: tuple[str, str | None],
    verdict: Verdict.ValueType,
    test: Check,
) -> None:
    decision = decide(view(*new), view(*old), PARAMS, POLICY)
    assert (decision.verdict, decision.test) == (verdict, test), decision.reason


def test_a_clear_copy_is_neither_refined_nor_checked_for_displacement() -> None:
    result = match(view("scene", "re-encode"), view("scene"), PARAMS, POLICY)
    assert result.residual is not None and result.residual <= PARAMS.flow_above
    assert not result.refined and result.displaced is None
    reference = match(view("scene", "re-encode"), view("scene"), EVERY_CHECK, POLICY)
    assert reference.displaced is not None  # the reference measures everything


def test_ecc_runs_only_between_conclusive_and_hopeless(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = view("scene", "brightness"), view("scene")
    ransac = match(*pair, replace(PARAMS, refine_above=0.0, refine_until=1.0), POLICY)
    assert ransac.refined and ransac.ransac_residual is not None
    hopeless = replace(PARAMS, refine_above=0.0, refine_until=ransac.ransac_residual / 2)
    assert not match(*pair, hopeless, POLICY).refined
    # From a few inliers (a big crop's, bunched in one part) ECC may still find the copy.
    monkeypatch.setattr(geometry, "CLEAR_INLIERS", ransac.inliers + 1)
    assert match(*pair, hopeless, POLICY).refined
    low = ransac.ransac_residual * 2
    conclusive = replace(PARAMS, refine_above=low, flow_above=low)
    assert not match(*pair, conclusive, POLICY).refined
    # Where the flow will judge the alignment, it judges a refined one.
    flow_decides = replace(conclusive, flow_above=ransac.ransac_residual / 2)
    assert match(*pair, flow_decides, POLICY).refined


def test_a_residual_that_decides_alone_needs_no_flow() -> None:
    result = match(view("another-shot"), view("scene"), PARAMS, POLICY)
    assert result.residual is not None and result.residual > POLICY.max_residual
    assert result.displaced is None


def test_a_pair_without_enough_inliers_is_not_aligned(monkeypatch: pytest.MonkeyPatch) -> None:
    aligned: list[object] = []

    def never(*args: object) -> None:
        aligned.append(args)
        raise AssertionError("aligned without enough inliers")

    monkeypatch.setattr(geometry, "_aligned", never)
    result = match(view("unrelated"), view("scene"), PARAMS, POLICY)
    assert result.inliers < POLICY.min_inliers and result.residual is None
    assert aligned == []


@pytest.fixture
def tried(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each RANSAC the matcher ran was on the candidate's mirror image, in order."""
    seen: list[bool] = []
    real = geometry._ransac

    def counted(*args: object, **kwargs: object) -> geometry.Estimate:
        seen.append(bool(args[2]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(geometry, "_ransac", counted)
    return seen


def test_the_other_orientation_is_tried_only_when_needed(tried: list[bool]) -> None:
    def orientations() -> list[bool]:
        """The orientations in the order tried (each tried with few features, then all)."""
        return [mirrored for mirrored, _ in itertools.groupby(tried)]

    mirrored = view("scene", "mirror"), view("scene")
    assert match(*mirrored, PARAMS, POLICY, mirrored_first=True).mirrored
    assert orientations() == [True]  # the hashes said flipped: one try
    tried.clear()
    assert match(*mirrored, PARAMS, POLICY).mirrored
    assert orientations() == [False, True]  # as it is first: no match, then the mirror image
    tried.clear()
    assert not match(view("scene", "caption"), view("scene"), PARAMS, POLICY).mirrored
    assert orientations() == [False]


def test_a_clear_copy_is_decided_on_the_strongest_features() -> None:
    pair = view("scene", "caption"), view("scene")
    first = match(*pair, PARAMS, POLICY)
    everything = match(*pair, replace(PARAMS, first_features=0), POLICY)
    assert first.inliers <= first.matches <= PARAMS.first_features < everything.matches
    assert first.residual is not None and everything.residual is not None
    assert abs(first.residual - everything.residual) < 0.01


def test_the_strongest_features_keep_their_order() -> None:
    points = np.arange(10, dtype=np.float32).reshape(5, 2)
    descriptors = np.arange(5, dtype=np.uint8).reshape(5, 1)
    responses = np.array([0.1, 0.9, 0.3, 0.8, 0.2], np.float32)
    strongest = geometry.KeypointSet(points, descriptors, responses).strongest(3)
    assert strongest.descriptors is not None
    assert strongest.descriptors.ravel().tolist() == [1, 2, 3]
    assert strongest.points.tolist() == [[2, 3], [4, 5], [6, 7]]


@pytest.mark.parametrize("edit", ["crop", "caption", "blur", "rotate-90", "mirror"])
def test_the_cheap_path_decides_as_every_check_does(edit: str) -> None:
    pair = view("scene", edit), view("scene")
    cheap = decide(*pair, PARAMS, POLICY, hint(("scene", edit), ("scene", None)))
    every = decide(*pair, EVERY_CHECK, POLICY)
    assert cheap.verdict == every.verdict == DUPLICATE


def test_lsh_matching_is_reproducible() -> None:
    pair = view("another-shot"), view("scene")
    first = match(*pair, PARAMS, POLICY)
    again = match(*pair, PARAMS, POLICY)
    assert (first.inliers, first.matches, first.transform) == (
        again.inliers,
        again.matches,
        again.transform,
    )


def test_a_hint_reversed_is_the_inverse_turn() -> None:
    forward = hint(("scene", "rotate-90"), ("scene", None))
    backward = hint(("scene", None), ("scene", "rotate-90"))
    assert forward.reversed() == backward
    assert HashHint(3, DIHEDRAL.index("flip_lr")).mirrors
    assert not HashHint(3, DIHEDRAL.index("rot270")).mirrors


@pytest.mark.parametrize(("inliers", "exact"), [(15, True), (200, False), (11, False)])
def test_an_approximate_match_short_of_clear_is_confirmed_exactly(
    inliers: int, exact: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[DescriptorMatching] = []

    def ransac(*args: object) -> geometry.Estimate:
        params = args[3]
        assert isinstance(params, MatchParams)
        used.append(params.descriptor_matching)
        return geometry.Estimate(matches=inliers + 5, inliers=inliers)

    monkeypatch.setattr(geometry, "_ransac", ransac)
    # No screen either (test_geometry.py's): the full matching alone.
    params = replace(PARAMS, first_features=0, screen_inliers=0)
    match(view("scene"), view("unrelated"), params, POLICY)
    lsh, brute = DescriptorMatching.LSH, DescriptorMatching.BRUTE_FORCE
    assert used == ([lsh, brute] if exact else [lsh]) * 2  # each orientation


@pytest.mark.parametrize(("distance", "mirrored_first"), [(20, True), (120, False)])
def test_a_far_hash_turn_does_not_say_mirrored(
    distance: int, mirrored_first: bool, tried: list[bool]
) -> None:
    flipped = HashHint(distance, DIHEDRAL.index("flip_lr"))
    decide(view("scene", "crop"), view("scene"), PARAMS, POLICY, flipped)
    assert tried[0] is mirrored_first


@pytest.mark.parametrize("picture", ["scene", "photo"])
def test_a_border_beside_a_turned_copys_corners_is_no_evidence(picture: str) -> None:
    # Their bars' edges lie in the same place with opposite contrast (white against black):
    # compared, they would anti-correlate and make two copies another shot.
    bordered, turned = view(picture, "border"), view(picture, "rotate-27")
    assert decide(bordered, turned, PARAMS, POLICY).verdict == DUPLICATE
    assert decide(turned, bordered, PARAMS, POLICY).verdict == DUPLICATE


def captioned(image: Image.Image, *, top: bool) -> Image.Image:
    """``image`` under a white caption, at its top or its bottom."""
    out = image.convert("RGB")
    size = out.height // 12
    ImageDraw.Draw(out).text(
        (size // 2, size // 2 if top else out.height - 2 * size),
        "summer 2026",
        fill="white",
        font=ImageFont.load_default(size=size),
        stroke_width=2,
        stroke_fill="black",
    )
    return out


def captioned_view(image: Image.Image, *, top: bool) -> ImageView:
    encoded = synthetic.encode(captioned(image, top=top), quality=90)
    return view_of_bytes(extract(encoded).working_copy, PARAMS)


@pytest.mark.parametrize("seed", [900, 912, 922])
def test_two_pictures_under_one_caption_are_not_copies(seed: int) -> None:
    # The caption's strokes align, and the rest of these pictures is too flat to refute
    # it: without the spread test they were DUPLICATE (11 of 20 such pairs).
    a = captioned_view(synthetic.photo(seed), top=True)
    b = captioned_view(synthetic.photo(seed + 1), top=False)
    assert decide(a, b, PARAMS, replace(POLICY, min_spread=0.0)).verdict == DUPLICATE
    decision = decide(a, b, PARAMS, POLICY)
    assert (decision.verdict, decision.test) == (REJECTED, Check.SPREAD)


@pytest.mark.parametrize("seed", [900, 901, 902])
def test_a_crop_under_its_own_caption_is_still_a_copy(seed: int) -> None:
    photo = synthetic.photo(seed)
    crop = photo.crop((photo.width // 8, photo.height // 10, photo.width * 7 // 8, photo.height))
    a, b = captioned_view(crop, top=False), captioned_view(photo, top=True)
    assert decide(a, b, PARAMS, POLICY).verdict == DUPLICATE
    assert decide(b, a, PARAMS, POLICY).verdict == DUPLICATE


def test_inliers_alone_prove_a_pair_too_flat_to_check_only_when_they_are_many() -> None:
    # A heavily blurred copy of one generated photo and another photo met 13 inliers, and
    # nothing was left to check their alignment on.
    few = geometry.MatchResult(matches=19, inliers=13, inlier_ratio=13 / 19, mirrored=True,
                               residual=None)  # fmt: skip
    rejected = judge(few, POLICY)
    assert (rejected.verdict, rejected.test) == (Verdict.VERDICT_REJECTED, Check.RANSAC_ONLY)
    assert "not proved" in rejected.reason
    many = replace(few, matches=40, inliers=30)
    proved = judge(many, POLICY)
    assert (proved.verdict, proved.test) == (Verdict.VERDICT_DUPLICATE, Check.RANSAC_ONLY)
