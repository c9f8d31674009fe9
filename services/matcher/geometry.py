"""Geometric proof on two working copies: local features, ratio test, RANSAC, residual.

All of it is CPU work on small images (the working copies are <= 512 px); the handler
runs it in a thread.

1. **Local features** (ORB by default, SIFT as a setting) on the grey working copy.
   ORB's descriptors are rotation invariant, so turned copies match as they are; they
   are not mirror invariant, so the candidate is also matched as a mirror image
   (ORB: its keypoints, flipped, described on the flipped copy; its features mapped back
   into the candidate's own coordinates). Working copies smaller than ``min_side`` are enlarged
   first: ORB's 31-px patches find almost nothing in a 128-px thumbnail.
2. **Ratio test** (Lowe): a match counts only if its best descriptor distance is
   clearly below the second best.
3. **RANSAC** with a full 2-D affine transform (``cv2.estimateAffine2D``, 6 degrees of
   freedom). Every edit that makes a copy (resize, also to another aspect ratio; crop;
   border or letterbox; rotation; flip) is an affine map of the pixel grid, so the
   affine model loses nothing on copies; a homography (8 DoF) would also fit a flat
   subject photographed from another angle, and a similarity (4 DoF) misses squashed
   copies ("square 512x512" of a 3:2 photo). The transform must keep its orientation
   (or reverse it, for the mirrored set) and stay within sane scales.
4. **Refinement**: ECC (``cv2.findTransformECC``) polishes the RANSAC transform to
   sub-pixel accuracy on the pixels themselves (keypoints are only as precise as their
   pyramid level; on fine texture half a pixel already shows in the residual).
5. **Residual after alignment**: the candidate is warped onto the new image and both
   are compared window by window (windows of about 1/32 of the image): zero-mean
   normalised cross-correlation of the grey levels after a 3x3 median (impulse noise),
   a blur to the coarser of the two images' own resolutions (a thumbnail enlarged 3x is
   compared at its own detail), a further blur of the sharper image until both have as
   much fine detail (blurred, sharpened, noisy copies), and the removal of each
   window's best-fitting plane (a smooth shading gradient proves nothing). Windows with
   too little texture left are skipped. Each window normalises itself, so brightness,
   contrast, gamma, greyscale and most colour edits leave a copy's windows correlated
   (~1). Another shot of the same scene (a burst, a stereo pair, another angle) is not
   one affine map away: parallax, motion and perspective leave many windows misaligned
   even when RANSAC finds many inliers on one plane. ``aligned_residual`` is a high
   percentile (``residual_quantile``, 80 %) of ``(1 - correlation) / 2`` over the
   windows: an overlay or caption spoils only a few windows, below the percentile,
   while another shot spoils a large part. An inverted design (light/dark) correlates
   negatively (and rarely matches at all: ORB's tests flip with the contrast).
6. **Displacement after alignment** (``displaced_fraction``): another shot with little
   parallax or motion keeps a low residual, but part of it has moved against the rest;
   dense optical flow (DIS) between the aligned images finds that region, while a copy's
   flow is ~0 wherever its content is shared (new content, a caption, is not moved).

Each check runs only where it can change the verdict (``MatchParams.skip_decided``): no
alignment without ``min_inliers`` inliers, ECC between a conclusive and a hopeless
residual, the displacement only for residuals where other shots hide, the second
orientation aligned only if it competes. The first orientation is tried on each side's
strongest features (``first_features``) before all of them: a copy they align
conclusively is decided there. The ratio test's neighbours come from an LSH index (brute
force confirms an answer near ``min_inliers``), and each orientation's full matching is
screened first by the index's own buckets (``screen_inliers``): an unrelated pair rarely
gets past it. A pair the hashes already align (a dihedral turn and a scale) needs no
features at all: ``turn_and_scale`` and ``check_alignment``, used by
services/matcher/decide.py.

The numbers behind the defaults: bench/matcher_eval.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from dedup.imaging import apply_dihedral, content_box

Grey = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float32]
Box = tuple[int, int, int, int]  # (top, bottom, left, right)

# Extra blur (sigmas, in pixels) tried on the sharper image to match the softer one, and
# how much sharper it may stay.
EXTRA_BLUR: Final = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
SHARPNESS_TOLERANCE: Final = 1.25
# A match with this many inliers that aligns (residual <= refine_above) needs no try as a
# mirror image.
CLEAR_INLIERS: Final = 50
# Windows are at least this many pixels, and about 1/WINDOWS_ACROSS of the longer side.
MIN_WINDOW: Final = 8
WINDOWS_ACROSS: Final = 32
# RANSAC's random samples and the LSH index's hash functions are seeded per call:
# reproducible verdicts.
RANSAC_SEED: Final = 0
# The LSH index over ORB's binary descriptors (FLANN): tables, key bits, probe level.
LSH_INDEX: Final[dict[str, bool | int | float | str]] = {
    "algorithm": 6,
    "table_number": 6,
    "key_size": 12,
    "multi_probe_level": 1,
}
# The screen (MatchParams.screen_inliers): the same tables, each query's own bucket only.
LSH_SCREEN_INDEX: Final = {**LSH_INDEX, "multi_probe_level": 0}
# Optical flow after alignment runs on copies at most this many pixels on the longer side.
FLOW_SIDE: Final = 256
# Local contrast normalisation before the flow (brightness, gamma, colour edits), sigma px.
FLOW_NORMALISE_SIGMA: Final = 4.0
# A displaced pixel's flow must explain the difference: its error after following the
# flow is at most this fraction of its error in place.
FLOW_EXPLAINS: Final = 0.5
# Fewer textured pixels than this in the overlap: too little to judge.
FLOW_MIN_PIXELS: Final = 500
# A pixel whose error in place is below this (normalised units) is not displaced: it
# already lines up, whatever the flow says (flow in soft, blurred areas wanders).
FLOW_MIN_ERROR: Final = 0.3
# Displaced pixels are kept only in regions at least this wide (morphological opening).
FLOW_OPEN: Final = 5
# Forward-backward flow must return within this many pixels to be trusted.
FLOW_CONSISTENCY: Final = 0.5


class Detector(StrEnum):
    ORB = "orb"
    SIFT = "sift"


class DescriptorMatching(StrEnum):
    """How the ratio test finds each descriptor's two nearest neighbours."""

    BRUTE_FORCE = "brute-force"  # exact, every pair of descriptors compared
    LSH = "lsh"  # FLANN's locality-sensitive hash index (binary descriptors; SIFT: exact)


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """The thresholds of the verdict (the handler judges by them; ``match`` skips what
    cannot change it)."""

    min_inliers: int = 12
    # A pair too small or too flat to check after alignment stands on its inliers alone:
    # it needs this many (a blurred copy of one picture and another picture met 13).
    min_unchecked_inliers: int = 24
    max_residual: float = 0.2
    # The most of the aligned overlap's textured pixels that optical flow may find
    # displaced (displaced_fraction) for a DUPLICATE.
    max_displaced: float = 0.1
    # Aligned copies (services/matcher/decide.py): the hashes' turn and a scale align a
    # pair this close in PDQ whose contents' aspect ratios agree within the tolerance (log
    # ratio) once turned; DUPLICATE at a residual of at most aligned_max_residual.
    aligned_max_pdq: int = 48
    aligned_aspect_tolerance: float = 0.02
    aligned_max_residual: float = 0.1
    # The textured windows that prove an alignment span at least this share of either
    # picture's height and width (``spread``): two pictures under one caption or logo
    # align on it alone.
    min_spread: float = 0.3


@dataclass(frozen=True, slots=True)
class MatchParams:
    detector: Detector = Detector.ORB
    # 1500 rather than ORB's usual 500-1000: a 50 % crop keeps a quarter of them.
    max_features: int = 1500
    # The first orientation is tried on each side's strongest features first: a copy
    # that this many align clearly needs no more (0: always all of them).
    first_features: int = 500
    # Working copies with a longer side below this are enlarged before detection.
    min_side: int = 384
    ratio: float = 0.8
    descriptor_matching: DescriptorMatching = DescriptorMatching.LSH
    # LSH with skip_decided: each orientation's full matching is screened first by the
    # index's own buckets (no multi-probe: cheaper); fewer RANSAC inliers there than this
    # and it is rejected as it is (0: no screen).
    screen_inliers: int = 6
    # In pixels of the new image's (possibly enlarged) working copy.
    ransac_threshold: float = 4.0
    ransac_iterations: int = 2000
    ransac_confidence: float = 0.995
    # Area scale (|det|) and anisotropy (singular value ratio) a copy's transform may have.
    max_area_scale: float = 64.0
    max_anisotropy: float = 3.0
    # Residual: blur before comparing, minimum texture of a window, the percentile taken.
    blur_sigma: float = 1.5
    min_window_std: float = 4.0
    residual_quantile: float = 0.8
    min_windows: int = 6
    # Optical flow after alignment: a pixel is displaced if the flow moves it more than
    # this (pixels at FLOW_SIDE scale) and following the flow explains the difference.
    flow_min_shift: float = 1.0
    # ECC refinement, when RANSAC's transform leaves a residual above refine_above (with
    # skip_decided: above flow_above if lower, at most refine_until unless fewer than
    # CLEAR_INLIERS inliers).
    refine: bool = True
    refine_above: float = 0.03
    refine_until: float = 0.5
    # The displacement check only where the residual leaves doubt: above flow_above (the
    # residuals where other shots hide) and at most the policy's max_residual.
    flow_above: float = 0.02
    # Skip every check that cannot change the verdict (no residual below min_inliers, ECC
    # and flow only in their ranges, the second orientation aligned only if it competes);
    # False: every check on every pair (the benchmark's reference).
    skip_decided: bool = True


# eq=False: it holds numpy arrays, whose == is element-wise.
@dataclass(frozen=True, slots=True, eq=False)
class KeypointSet:
    points: Points  # N x 2 (x, y) in the image's own (possibly enlarged) pixels
    descriptors: npt.NDArray[Any] | None  # N x 32 uint8 (ORB) or N x 128 float32 (SIFT)
    # Detector response per feature (None: not known; ``strongest`` keeps them all).
    responses: npt.NDArray[np.float32] | None = None
    # Each keypoint's angle (degrees) and pyramid level: ORB's mirror-image features are
    # described at them (None: not kept).
    angles: npt.NDArray[np.float32] | None = None
    levels: npt.NDArray[np.uint8] | None = None

    @property
    def nbytes(self) -> int:
        arrays = (self.points, self.descriptors, self.responses, self.angles, self.levels)
        return sum(0 if a is None else a.nbytes for a in arrays)

    def __len__(self) -> int:
        return len(self.points)

    def strongest(self, n: int) -> KeypointSet:
        """The ``n`` features of highest response, in their own order."""
        if self.responses is None or self.descriptors is None or len(self) <= n:
            return self
        keep = np.sort(np.argpartition(-self.responses, n)[:n])
        angles = None if self.angles is None else self.angles[keep]
        levels = None if self.levels is None else self.levels[keep]
        return KeypointSet(
            self.points[keep], self.descriptors[keep], self.responses[keep], angles, levels
        )


# Bytes per feature (its point, 2 float32, its descriptor, its response and, ORB, its
# angle and level): the most a view's features take, counted from the start (they are
# computed on first use).
FEATURE_BYTES: Final = {Detector.ORB: 8 + 32 + 4 + 5, Detector.SIFT: 8 + 128 * 4 + 4}


@dataclass(frozen=True, eq=False, slots=True)
class ImageView:
    """What matching needs of one working copy; cached by image id and e_tag.

    The features are computed on first use and kept: an aligned copy needs none, most
    pairs never try the mirror image. (Two threads computing the same features at once
    both get the same answer; one is kept.)
    """

    grey: Grey  # the grey working copy, enlarged to at least min_side
    scale: float  # grey's size / the working copy's size
    # grey's (top, bottom, left, right) without black or white bars (dedup.imaging): the
    # part the hasher's PDQ hash describes.
    content: Box
    params: MatchParams  # how its features are computed
    # mirrored -> features; mirrored: those of the flipped copy, in this image's own
    # coordinates.
    computed: dict[bool, KeypointSet] = field(default_factory=dict, repr=False)
    # Where its texture lies (``texture_extent``), computed on first use: one entry.
    textures: list[Box | None] = field(default_factory=list, repr=False)

    @property
    def plain(self) -> KeypointSet:
        return self.keypoints(mirrored=False)

    @property
    def mirrored(self) -> KeypointSet:
        return self.keypoints(mirrored=True)

    def keypoints(self, *, mirrored: bool) -> KeypointSet:
        found = self.computed.get(mirrored)
        if found is None:
            if mirrored:
                found = _mirrored_keypoints(self.grey, self.params, self._detected())
            else:
                found = _keypoints(self.grey, self.params)
            self.computed[mirrored] = found
        return found

    def _detected(self) -> KeypointSet | None:
        """The features the mirror image's are derived from (ORB: the plain ones; always
        these, whichever orientation is asked for first, so that a pair's verdict does not
        depend on the order its views were used in)."""
        return self.plain if self.params.detector is Detector.ORB else None

    @property
    def texture(self) -> Box | None:
        if not self.textures:
            self.textures.append(texture_extent(self.grey, self.params))
        return self.textures[0]

    @property
    def nbytes(self) -> int:
        """The grey copy and the most its features (both orientations) can take."""
        features = 2 * self.params.max_features * FEATURE_BYTES[self.params.detector]
        return self.grey.nbytes + features


@dataclass(frozen=True, slots=True)
class MatchResult:
    matches: int  # after the ratio test
    inliers: int
    inlier_ratio: float  # inliers / matches
    mirrored: bool
    # (1 - correlation) / 2 after alignment, 0 = identical; None: no transform or too
    # little texture to judge.
    residual: float | None
    # 2x3 affine map from the candidate's pixels to the new image's pixels.
    transform: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    windows: int = 0  # textured windows the residual was measured on
    window_residuals: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    # How much of either picture those windows span (``spread``); None: not measured.
    spread: float | None = None
    # The fraction of the overlap's textured pixels that the dense optical flow finds
    # displaced after alignment (parallax, motion), 0 = none; None: not measured.
    displaced: float | None = None
    # The residual with RANSAC's transform, before ECC's refinement (None: not measured).
    ransac_residual: float | None = None
    refined: bool = False  # ECC ran


@dataclass(frozen=True, slots=True)
class Alignment:
    """The checks after alignment by a transform known beforehand (no features)."""

    residual: float | None
    displaced: float | None  # None: not measured (or too little texture)
    windows: int


def decode_grey(data: bytes) -> Grey:
    """The grey levels of an encoded working copy; raises ValueError if it does not decode."""
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None or grey.size == 0:
        raise ValueError("the working copy does not decode")
    return np.asarray(grey, dtype=np.uint8)


def _detector(params: MatchParams) -> cv2.Feature2D:
    if params.detector is Detector.SIFT:
        return cv2.SIFT.create(nfeatures=params.max_features)
    return _orb(params)


def _orb(params: MatchParams) -> cv2.ORB:
    # A low FAST threshold: blurred or low-contrast copies still get corners.
    return cv2.ORB.create(nfeatures=params.max_features, fastThreshold=10)


def _keypoints(grey: Grey, params: MatchParams) -> KeypointSet:
    if min(grey.shape) < 2:
        # A one-pixel line (a 20000x1 upload): ORB's pyramid would shrink it to nothing
        # and fail (cv2.error), and no corner fits in it anyway.
        return KeypointSet(np.zeros((0, 2), np.float32), None)
    found = _keypoint_set(*_detector(params).detectAndCompute(grey, None))
    if params.detector is not Detector.ORB:
        # Only ORB's mirror image is described at them (SIFT packs its octave otherwise).
        return replace(found, angles=None, levels=None)
    return found


def _keypoint_set(keypoints: Sequence[cv2.KeyPoint], descriptors: npt.NDArray[Any] | None
                  ) -> KeypointSet:  # fmt: skip
    if descriptors is None or not keypoints:
        return KeypointSet(np.zeros((0, 2), np.float32), None)
    points = np.asarray(cv2.KeyPoint.convert(keypoints), np.float32).reshape(-1, 2)
    # One pass over the keypoints (each attribute read is a call into OpenCV).
    rest = [(k.response, k.angle, k.octave) for k in keypoints]
    columns = np.array(rest, np.float32).reshape(-1, 3)
    responses, angles = columns[:, 0].copy(), columns[:, 1].copy()
    return KeypointSet(points, descriptors, responses, angles, columns[:, 2].astype(np.uint8))


def view_of(grey: Grey, params: MatchParams) -> ImageView:
    """Enlarge a small working copy (its features follow on first use)."""
    h, w = grey.shape
    longer = max(h, w)
    scale = 1.0
    if longer < params.min_side:
        scale = params.min_side / longer
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC), np.uint8)
    return ImageView(grey=grey, scale=scale, content=content_box(grey), params=params)


def _mirrored_keypoints(
    grey: Grey, params: MatchParams, detected: KeypointSet | None = None
) -> KeypointSet:
    """The features of the flipped copy, mapped back into ``grey``'s coordinates.

    ``detected``: ``grey``'s own ORB features. Their keypoints, flipped, are described on
    the flipped copy instead of detecting it afresh (the detection is most of ORB's
    cost): FAST corners, their Harris scores and orientations are mirror-symmetric, and
    so, but for rounding, is ORB's pyramid, so it would find the same keypoints there."""
    flipped_grey = np.ascontiguousarray(grey[:, ::-1])
    if detected is None or detected.angles is None:
        flipped = _keypoints(flipped_grey, params)
    else:
        orb = _orb(params)
        flipped = _keypoint_set(*orb.compute(flipped_grey, _flipped(detected, grey.shape[1], orb)))
    points = flipped.points.copy()
    points[:, 0] = (grey.shape[1] - 1) - points[:, 0]
    return KeypointSet(points, flipped.descriptors, flipped.responses)


def _flipped(features: KeypointSet, width: int, orb: cv2.ORB) -> list[cv2.KeyPoint]:
    """``features``' keypoints as ``orb`` would place them in the copy flipped left to
    right: on each one's pyramid level (``width`` / scale**level px, rounded as ORB rounds
    it, in float32) the mirror image of its pixel there, its angle mirrored."""
    assert features.angles is not None and features.levels is not None
    assert features.responses is not None
    levels = features.levels.astype(np.float64)
    scale = (orb.getScaleFactor() ** levels).astype(np.float32)
    level_width = np.rint(np.float32(width) / scale)
    xs = (level_width - 1) * scale - features.points[:, 0]
    sizes = orb.getPatchSize() * scale  # as ORB sizes them; only its descriptors count
    angles = np.mod(180.0 - features.angles, 360.0)
    columns = (xs, features.points[:, 1], sizes, angles, features.responses)
    # Python numbers: cv2.KeyPoint from numpy scalars one by one costs more than ORB's compute.
    rows = zip(*(c.astype(np.float64).tolist() for c in columns), strict=True)
    return [
        cv2.KeyPoint(x, y, size, angle, response, level)
        for (x, y, size, angle, response), level in zip(
            rows, features.levels.astype(np.int32).tolist(), strict=True
        )
    ]


def view_of_bytes(data: bytes, params: MatchParams) -> ImageView:
    """``view_of`` an encoded working copy; raises ValueError if it does not decode."""
    return view_of(decode_grey(data), params)


def _ratio_matches(
    query: KeypointSet, train: KeypointSet, params: MatchParams, *, screen: bool = False
) -> list[Any]:
    if query.descriptors is None or train.descriptors is None or len(train) < 2:
        return []
    pairs = _matcher(params, screen=screen).knnMatch(query.descriptors, train.descriptors, k=2)
    return [p[0] for p in pairs if len(p) == 2 and p[0].distance < params.ratio * p[1].distance]


def _matcher(params: MatchParams, *, screen: bool = False) -> cv2.DescriptorMatcher:
    if params.detector is Detector.SIFT:
        return cv2.BFMatcher(cv2.NORM_L2)
    if not _approximate(params):
        return cv2.BFMatcher(cv2.NORM_HAMMING)
    # The index's random hash functions come from OpenCV's per-thread RNG (the screen's
    # tables are the full matching's).
    cv2.setRNGSeed(RANSAC_SEED)
    return cv2.FlannBasedMatcher(LSH_SCREEN_INDEX if screen else LSH_INDEX, {"checks": 32})


def _sane(transform: npt.NDArray[np.float64], mirrored: bool, params: MatchParams) -> bool:
    if not np.isfinite(transform).all():
        return False
    linear = transform[:, :2]
    det = float(np.linalg.det(linear))
    if (det < 0) != mirrored or det == 0:
        return False
    singular = np.linalg.svd(linear, compute_uv=False)
    area = abs(det)
    return (
        1 / params.max_area_scale <= area <= params.max_area_scale
        and singular[0] <= params.max_anisotropy * singular[1]
    )


@dataclass(frozen=True, slots=True, eq=False)
class Estimate:
    """RANSAC's answer for one orientation of the candidate."""

    matches: int
    inliers: int
    transform: npt.NDArray[np.float64] | None = None
    # The inlier correspondences: candidate points (src) and new-image points (dst).
    src: Points | None = None
    dst: Points | None = None


def _estimate(
    query: KeypointSet,
    candidate: KeypointSet,
    mirrored: bool,
    params: MatchParams,
    policy: MatchPolicy,
    *,
    screen: bool = True,
) -> Estimate:
    """RANSAC on the ratio test's matches of the new image's features (``query``) with the
    candidate's. An approximate (LSH) answer that would pass min_inliers but short of a
    clear match is confirmed by exact matching: an approximate second neighbour lets more
    chance matches through the ratio test (exact matching finds no more true ones, so
    fewer LSH inliers than min_inliers reject as they are).

    Screened first (``screen_inliers``): an unrelated pair's matches in the own buckets
    are chance, and RANSAC finds no sane transform among them or a handful of inliers; a
    copy keeps many of its true matches there (bench/README.md: the margin measured on
    bench.matcher_eval's pairs). The screen seeds as the full matching does, so a pair
    it lets through gets the same answer as without it. ``screen`` False: no screen (the
    strongest features found enough inliers already: not hopeless)."""
    # Fewer matches than the inliers a verdict needs: RANSAC cannot find them.
    fewest = policy.min_inliers if params.skip_decided else 3
    if screen and params.screen_inliers and params.skip_decided and _approximate(params):
        screened = _ransac(query, candidate, mirrored, params, fewest, screen=True)
        if screened.inliers < params.screen_inliers:
            return screened
    estimate = _ransac(query, candidate, mirrored, params, fewest)
    if _approximate(params) and policy.min_inliers <= estimate.inliers < CLEAR_INLIERS:
        exact = replace(params, descriptor_matching=DescriptorMatching.BRUTE_FORCE)
        return _ransac(query, candidate, mirrored, exact, fewest)
    return estimate


def _approximate(params: MatchParams) -> bool:
    return params.detector is Detector.ORB and params.descriptor_matching is DescriptorMatching.LSH


def _ransac(
    query: KeypointSet,
    candidate: KeypointSet,
    mirrored: bool,
    params: MatchParams,
    fewest: int,
    *,
    screen: bool = False,
) -> Estimate:
    matches = _ratio_matches(query, candidate, params, screen=screen)
    if len(matches) < fewest:
        return Estimate(len(matches), 0)
    dst = query.points[[m.queryIdx for m in matches]]
    src = candidate.points[[m.trainIdx for m in matches]]
    # OpenCV's RNG is per thread and carries over between calls: seeded here, the same
    # pair gets the same RANSAC samples (and so the same verdict) on every run.
    cv2.setRNGSeed(RANSAC_SEED)
    transform, mask = cv2.estimateAffine2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=params.ransac_threshold,
        maxIters=params.ransac_iterations,
        confidence=params.ransac_confidence,
        refineIters=10,
    )
    if transform is None or mask is None:
        return Estimate(len(matches), 0)
    affine = np.asarray(transform, dtype=np.float64)
    if not _sane(affine, mirrored, params):
        return Estimate(len(matches), 0)
    keep = mask.ravel().astype(bool)
    return Estimate(len(matches), int(keep.sum()), affine, src[keep], dst[keep])


def window_residuals(
    new: Grey,
    candidate: Grey,
    transform: npt.NDArray[np.float64],
    params: MatchParams,
    pixel: float = 1.0,
    boxes: tuple[Box, Box] | None = None,
) -> tuple[npt.NDArray[np.float32], Box | None]:
    """``(1 - correlation) / 2`` of every textured window of the overlap, 0 = identical,
    and the extent of those windows (``Windows.extent``; None: none).

    ``pixel``: the size, in ``new``'s pixels, of the coarser of the two images' own pixels
    (a thumbnail enlarged 3x has 3-px pixels): both are blurred to that resolution, so a
    sharp original and its blurry thumbnail compare alike. ``boxes``: each image's
    content without its bars (``ImageView.content``): the overlap is of contents only (a
    white border's edge beside a rotated copy's black corner would anti-correlate).
    """
    h, w = new.shape
    sigma = params.blur_sigma * max(1.0, pixel)
    warped = cv2.warpAffine(candidate, transform, (w, h), flags=cv2.INTER_LINEAR)
    candidate_content = _box_mask(candidate.shape, boxes[1] if boxes else None)
    inside = np.asarray(
        cv2.warpAffine(candidate_content, transform, (w, h), flags=cv2.INTER_NEAREST), np.uint8
    )
    inside &= _box_mask(new.shape, boxes[0] if boxes else None)
    # Blurring reaches this far across the overlap's edge: keep those pixels out.
    margin = int(3 * (sigma + EXTRA_BLUR[-1])) + 2
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    windows = Windows(h, w, max(MIN_WINDOW, round(max(h, w) / WINDOWS_ACROSS)),
                      cv2.erode(inside, kernel))  # fmt: skip
    # A median first: impulse noise (salt and pepper) is not structure.
    a = _blurred(cv2.medianBlur(new, 3), sigma)
    b = _blurred(cv2.medianBlur(warped, 3), sigma)
    a, b = match_sharpness(a, b, windows, params.min_window_std**2)

    da, db = _detrend(windows.of(a), windows.k), _detrend(windows.of(b), windows.k)
    sa = np.sqrt((da * da).mean(axis=1))
    sb = np.sqrt((db * db).mean(axis=1))
    textured = (sa >= params.min_window_std) & (sb >= params.min_window_std)
    corr = (da[textured] * db[textured]).mean(axis=1) / (sa[textured] * sb[textured])
    residuals = np.asarray((1.0 - np.clip(corr, -1.0, 1.0)) / 2.0, dtype=np.float32)
    return residuals, windows.extent(textured)


# Texture on the scale of a window, less the shading under it (texture_extent).
TEXTURE_SHADING_SIGMA: Final = 8.0


def texture_extent(grey: Grey, params: MatchParams) -> Box | None:
    """The (top, bottom, left, right) of ``grey``'s textured windows, as the residual sees
    texture (its blur, its window size and deviation; shading taken off by a wide blur
    rather than a plane per window): where the picture has anything to compare. None
    when it has none."""
    h, w = grey.shape
    k = max(MIN_WINDOW, round(max(h, w) / WINDOWS_ACROSS))
    rows, cols = h // k, w // k
    if rows == 0 or cols == 0:
        return None
    smooth = _blurred(cv2.medianBlur(grey, 3), params.blur_sigma)
    detail = smooth - _blurred(smooth, TEXTURE_SHADING_SIGMA)
    cut = np.ascontiguousarray(detail[: rows * k, : cols * k])
    # OpenCV's area average at a whole ratio: each window's mean square.
    energy = cv2.resize(cv2.multiply(cut, cut), (cols, rows), interpolation=cv2.INTER_AREA)
    r, c = np.nonzero(energy >= params.min_window_std**2)
    if len(r) == 0:
        return None
    return int(r.min()) * k, (int(r.max()) + 1) * k, int(c.min()) * k, (int(c.max()) + 1) * k


def spread(
    judged: Box | None,
    transform: npt.NDArray[np.float64],
    new_texture: Box | None,
    candidate_texture: Box | None,
) -> float:
    """How much of either picture's texture the windows that judged an alignment span:
    in each image (``judged``, in the new one's pixels, mapped back into the candidate's
    by ``transform``), the smaller of their height's and width's shares of the extent of
    its own texture (``texture_extent``), then the larger of the two images'. A crop
    spans all of itself, a copy of a small object on a plain ground all of the object;
    two pictures aligned on the caption or the logo they both carry, a band or a corner
    of each."""
    if judged is None:
        return 0.0
    top, bottom, left, right = judged
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], np.float64)
    inverse = cv2.invertAffineTransform(transform)
    back = corners @ inverse[:, :2].T + inverse[:, 2]

    def share(xs: npt.NDArray[Any], ys: npt.NDArray[Any], texture: Box | None) -> float:
        if texture is None:
            return 1.0  # no texture of its own to span
        t, b, lft, r = texture
        return min(1.0, float(np.ptp(ys)) / max(1, b - t), float(np.ptp(xs)) / max(1, r - lft))

    return max(
        share(corners[:, 0], corners[:, 1], new_texture),
        share(back[:, 0], back[:, 1], candidate_texture),
    )


def _box_mask(shape: tuple[int, ...], box: Box | None) -> npt.NDArray[np.uint8]:
    """1 inside ``box`` (the whole image without one), 0 outside."""
    if box is None:
        return np.ones(shape[:2], np.uint8)
    top, bottom, left, right = box
    mask = np.zeros(shape[:2], np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


class Windows:
    """The k x k windows of an h x w image that lie wholly inside ``mask``."""

    def __init__(self, h: int, w: int, k: int, mask: npt.NDArray[Any]) -> None:
        self.k, self.rows, self.cols = k, h // k, w // k
        self._where = np.nonzero(self._blocks(mask).min(axis=(2, 3)) > 0)

    def _blocks(self, image: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """rows x cols x k x k: a view, no copy."""
        k, rows, cols = self.k, self.rows, self.cols
        cut = image[: rows * k, : cols * k]
        return cut.reshape(rows, k, cols, k).transpose(0, 2, 1, 3)

    def extent(self, picked: npt.NDArray[np.bool_]) -> Box | None:
        """The (top, bottom, left, right) pixels of the ``picked`` windows (a flag per
        window, in ``of``'s order); None for none."""
        if not picked.any():
            return None
        rows, cols = (at[picked] for at in self._where)
        k = self.k
        return (int(rows.min()) * k, (int(rows.max()) + 1) * k,
                int(cols.min()) * k, (int(cols.max()) + 1) * k)  # fmt: skip

    def of(self, image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """One row of k * k pixels per window inside the mask."""
        picked = self._blocks(image)[self._where]  # one copy, of these windows only
        return np.asarray(picked.reshape(-1, self.k * self.k), dtype=np.float32)


def _blurred(image: npt.NDArray[Any], sigma: float) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma), np.float32)


def _detail(
    image: npt.NDArray[np.float32], windows: Windows
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per window: (Laplacian energy, variance); their ratio is fine detail per contrast."""
    pixels = windows.of(image)
    laplacian = windows.of(cv2.Laplacian(image, cv2.CV_32F))
    return (laplacian * laplacian).mean(axis=1), pixels.var(axis=1)


Detail = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


def _sharper_by(detail_a: Detail, detail_b: Detail, min_var: float) -> float | None:
    """Median log ratio of a's fine detail to b's (``_detail`` of each) over windows with
    contrast in both (> 0: a is sharper); None when too few windows have contrast. A
    median, so that an overlay (sharp text on a soft photo) does not count."""
    energy_a, var_a = detail_a
    energy_b, var_b = detail_b
    both = (var_a >= min_var) & (var_b >= min_var) & (energy_a > 0) & (energy_b > 0)
    if both.sum() < MIN_WINDOW:
        return None
    log_a = np.log(energy_a[both] / var_a[both])
    log_b = np.log(energy_b[both] / var_b[both])
    return float(np.median(log_a - log_b))


def match_sharpness(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], windows: Windows, min_var: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Blur the sharper image until it is no sharper than the other one.

    A blurred, noisy or upscaled copy is still a copy: compared at the detail that both
    images have, it aligns with its original; another shot does not align at any blur.
    """
    tolerance = float(np.log(SHARPNESS_TOLERANCE))
    detail_a, detail_b = _detail(a, windows), _detail(b, windows)
    ratio = _sharper_by(detail_a, detail_b, min_var)
    if ratio is None or abs(ratio) <= tolerance:
        return a, b
    swap = ratio < 0
    sharp, soft = (b, a) if swap else (a, b)
    soft_detail = detail_a if swap else detail_b
    blurred = sharp
    for extra in EXTRA_BLUR:
        blurred = _blurred(sharp, extra)
        now = _sharper_by(_detail(blurred, windows), soft_detail, min_var)
        if now is None or now <= tolerance:
            break
    return (soft, blurred) if swap else (blurred, soft)


def _detrend(windows: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.float32]:
    """Each k x k window (a row) less its best-fitting plane: a smooth shading gradient
    (a lit wall, the sky) is not structure that could prove or refute an alignment."""
    v, u = np.mgrid[0:k, 0:k].astype(np.float32) - (k - 1) / 2
    u, v = u.ravel(), v.ravel()
    centred = windows - windows.mean(axis=1, keepdims=True)
    slope_u = centred @ u / float(u @ u)
    slope_v = centred @ v / float(v @ v)
    return np.asarray(centred - slope_u[:, None] * u - slope_v[:, None] * v, dtype=np.float32)


def aligned_residual(windows: npt.NDArray[np.float32], params: MatchParams) -> float | None:
    """The ``residual_quantile`` of the window residuals; None if too few windows."""
    if len(windows) < params.min_windows:
        return None
    return float(np.quantile(windows, params.residual_quantile))


def _reprojection_errors(
    transform: npt.NDArray[np.float64], src: Points, dst: Points
) -> npt.NDArray[np.float64]:
    moved = src.astype(np.float64) @ transform[:, :2].T + transform[:, 2]
    return np.asarray(np.hypot(*(moved - dst).T), dtype=np.float64)


def refine(
    new: Grey, candidate: Grey, estimate: Estimate, params: MatchParams
) -> npt.NDArray[np.float64] | None:
    """The RANSAC transform polished to sub-pixel accuracy by ECC (correlation on the
    pixels themselves): keypoints are only as precise as their pyramid level, and inliers
    bunched in one part of the image extrapolate poorly. None when ECC does not converge
    or no longer agrees with the inliers (a refinement must not contradict the evidence)."""
    assert estimate.transform is not None and estimate.src is not None and estimate.dst is not None
    inverse = cv2.invertAffineTransform(estimate.transform).astype(np.float32)
    try:
        _, warp = cv2.findTransformECC(
            new.astype(np.float32),
            candidate.astype(np.float32),
            inverse,
            cv2.MOTION_AFFINE,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4),
            # Only where the candidate has pixels (a crop or a border covers less).
            np.ones(candidate.shape, np.uint8),
            5,
        )
    except cv2.error:
        return None
    refined = np.asarray(cv2.invertAffineTransform(warp), dtype=np.float64)
    errors = _reprojection_errors(refined, estimate.src, estimate.dst)
    if not np.isfinite(refined).all() or np.median(errors) > params.ransac_threshold:
        return None
    return refined


def match(
    new: ImageView,
    candidate: ImageView,
    params: MatchParams,
    policy: MatchPolicy = MatchPolicy(),
    *,
    mirrored_first: bool = False,
) -> MatchResult:
    """Match ``candidate`` (as it is and mirrored) against ``new``; the better one wins.

    Better is the lower aligned residual, not the higher inlier count: a symmetric scene
    (a facade, a face) matches well as its own mirror image but only aligns one way. An
    orientation with far fewer inliers than the other does not compete (with
    ``skip_decided`` it is not aligned at all). ``mirrored_first``: try the mirror image
    first (the hashes say the candidate is flipped); a clear copy needs no second try.
    """
    first = _orientation(new, candidate, mirrored_first, params, policy)
    if _clear(first, params):
        return first
    second_keypoints = candidate.keypoints(mirrored=not mirrored_first)
    second_estimate = _estimate(new.plain, second_keypoints, not mirrored_first, params, policy)
    most = max(first.inliers, second_estimate.inliers)
    competes = second_estimate.inliers > 0 and second_estimate.inliers >= most / 4
    if params.skip_decided and not competes:
        second = _unaligned(second_estimate, not mirrored_first)
    else:
        second = _aligned_result(
            new, candidate, second_estimate, not mirrored_first, params, policy
        )
    contenders = [r for r in (first, second) if r.inliers > 0 and r.inliers >= most / 4]
    if not contenders:
        return max((first, second), key=lambda r: r.matches)
    return min(contenders, key=lambda r: (2.0 if r.residual is None else r.residual, -r.inliers))


def _clear(result: MatchResult, params: MatchParams) -> bool:
    """A copy as it is: many inliers and a low residual; no need to try the other
    orientation."""
    return (
        result.residual is not None
        and result.residual <= params.refine_above
        and result.inliers >= CLEAR_INLIERS
    )


def _orientation(
    new: ImageView,
    candidate: ImageView,
    mirrored: bool,
    params: MatchParams,
    policy: MatchPolicy,
) -> MatchResult:
    """One orientation of the candidate: its strongest features first, enough for a copy
    that they align conclusively (no refinement or flow could change it), then all."""
    keypoints = candidate.keypoints(mirrored=mirrored)
    screen = True
    if params.first_features and params.skip_decided:
        n = params.first_features
        # Fewer matches than CLEAR_INLIERS cannot align clearly: no RANSAC for them.
        few = _ransac(new.plain.strongest(n), keypoints.strongest(n), mirrored, params,
                      CLEAR_INLIERS)  # fmt: skip
        if few.transform is not None and few.inliers >= CLEAR_INLIERS:
            aligned = _aligned(new, candidate, few.transform, params)
            if _conclusive(aligned[2], params):
                return _aligned_result(new, candidate, few, mirrored, params, policy, aligned)
        screen = few.inliers < params.screen_inliers
    estimate = _estimate(new.plain, keypoints, mirrored, params, policy, screen=screen)
    return _aligned_result(new, candidate, estimate, mirrored, params, policy)


def _conclusive(residual: float | None, params: MatchParams) -> bool:
    """A residual so low that neither ECC nor the flow would run after it."""
    return residual is not None and residual <= min(params.refine_above, params.flow_above)


def _unaligned(estimate: Estimate, mirrored: bool) -> MatchResult:
    """RANSAC's answer alone: no residual measured."""
    ratio = estimate.inliers / estimate.matches if estimate.matches else 0.0
    return MatchResult(estimate.matches, estimate.inliers, ratio, mirrored, None)


def _aligned_result(
    new: ImageView,
    candidate: ImageView,
    best: Estimate,
    mirrored: bool,
    params: MatchParams,
    policy: MatchPolicy,
    aligned: Aligned | None = None,
) -> MatchResult:
    """``best`` aligned (``aligned``: already, by its transform), refined and checked."""
    if best.transform is None:
        return MatchResult(best.matches, 0, 0.0, mirrored, None)
    if params.skip_decided and best.inliers < policy.min_inliers:
        return _unaligned(best, mirrored)  # rejected whatever the alignment says
    transform, windows, residual, spread = aligned or _aligned(
        new, candidate, best.transform, params
    )
    ransac_residual, refined = residual, False
    # ECC's refinement, where RANSAC's transform leaves doubt: the better aligned one counts
    # (ECC maximises the correlation of the whole overlap, which an overlay can pull).
    if params.refine and _worth_refining(residual, best.inliers, params):
        refined = True
        polished = refine(new.grey, candidate.grey, best, params)
        if polished is not None:
            again = _aligned(new, candidate, polished, params)
            if again[2] is not None and (residual is None or again[2] < residual):
                transform, windows, residual, spread = again
    displaced = None
    if not params.skip_decided or _flow_decides(residual, params, policy.max_residual):
        displaced = _displaced(new, candidate, transform, params)
    (a, b, c), (d, e, f) = transform.tolist()
    return MatchResult(
        matches=best.matches,
        inliers=best.inliers,
        inlier_ratio=best.inliers / best.matches if best.matches else 0.0,
        mirrored=mirrored,
        residual=residual,
        transform=((a, b, c), (d, e, f)),
        windows=len(windows),
        window_residuals=windows,
        spread=spread,
        displaced=displaced,
        ransac_residual=ransac_residual,
        refined=refined,
    )


def _worth_refining(residual: float | None, inliers: int, params: MatchParams) -> bool:
    """ECC where RANSAC's alignment is neither conclusive (low residual) nor hopeless (a
    residual far above max_residual from a transform that many inliers pin down; from a
    few, bunched in one part of a big crop, ECC can still find the copy)."""
    if residual is None:
        return True
    if not params.skip_decided:
        return residual > params.refine_above
    if residual > params.refine_until and inliers >= CLEAR_INLIERS:
        return False
    # The flow judges only a refined transform: an unrefined one leaves sub-pixel shifts
    # that it counts as displaced.
    return residual > min(params.refine_above, params.flow_above)


def _flow_decides(residual: float | None, params: MatchParams, until: float) -> bool:
    """The displacement check only in the residual's range where other shots hide: a
    residual above ``until`` decides alone, a lower one than ``flow_above`` is a copy's."""
    return residual is not None and params.flow_above < residual <= until


def _displaced(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64], params: MatchParams
) -> float | None:
    # Along its coarser axis: a squashed thumbnail is as coarse as its fewest pixels.
    stretch = float(np.linalg.svd(transform[:, :2], compute_uv=False)[0])
    pixel = max(new.scale, candidate.scale * stretch)
    return displaced_fraction(new.grey, candidate.grey, transform, params, pixel)


# (transform, window residuals, aligned residual)
# (transform, window residuals, aligned residual, the windows' spread).
Aligned = tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], float | None, float]


def _aligned(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64], params: MatchParams
) -> Aligned:
    """(transform, window residuals, aligned residual, their windows' spread) of the
    candidate warped by it."""
    pixel = _coarser_pixel(new, candidate, transform)
    boxes = (new.content, candidate.content)
    windows, judged = window_residuals(new.grey, candidate.grey, transform, params, pixel, boxes)
    spanned = spread(judged, transform, new.texture, candidate.texture)
    return transform, windows, aligned_residual(windows, params), spanned


# ---- aligned copies: the hashes' turn and a scale, no features ---------------------------


def turn_and_scale(
    new: ImageView, candidate: ImageView, turn: int, aspect_tolerance: float
) -> npt.NDArray[np.float64] | None:
    """The affine map (candidate's pixels -> new image's) that turns the candidate's
    content by ``DIHEDRAL[turn]`` and scales it onto the new image's content (bars
    trimmed on both sides); None when the two contents' aspect ratios differ by more
    than ``aspect_tolerance`` once turned (``aspect_gap``): not one turn and a scale away."""
    if aspect_gap(new, candidate, turn) > aspect_tolerance:
        return None
    turned = _turned_corners(candidate, turn)
    top, bottom, left, right = new.content
    src = np.array([turned[0, 0], turned[0, 1], turned[1, 0]], np.float32)
    dst = np.array([[left, top], [right, top], [left, bottom]], np.float32) - 0.5
    return np.asarray(cv2.getAffineTransform(src, dst), np.float64)


def aspect_gap(new: ImageView, candidate: ImageView, turn: int) -> float:
    """|log| of the ratio of the two contents' aspect ratios, the candidate's turned."""
    turned = _turned_corners(candidate, turn)
    turned_w = float(np.hypot(*(turned[0, 1] - turned[0, 0])))
    turned_h = float(np.hypot(*(turned[1, 0] - turned[0, 0])))
    top, bottom, left, right = new.content
    return abs(float(np.log((turned_w / turned_h) / ((right - left) / (bottom - top)))))


def _turned_corners(view: ImageView, turn: int) -> npt.NDArray[np.float64]:
    """The content's corners (pixel edges) laid out as a 2 x 2 image, turned by
    ``DIHEDRAL[turn]``: [0, 0] is the corner that lands top left, [0, 1] top right."""
    top, bottom, left, right = view.content
    corners = np.array([[[left, top], [right, top]], [[left, bottom], [right, bottom]]], np.float64)
    return np.asarray(apply_dihedral(corners - 0.5, turn), np.float64)


def check_alignment(
    new: ImageView,
    candidate: ImageView,
    transform: npt.NDArray[np.float64],
    params: MatchParams,
    flow_until: float,
) -> Alignment:
    """The residual after ``transform``, and the displacement where it leaves doubt
    (above ``flow_above``, at most ``flow_until``)."""
    _, windows, residual, _ = _aligned(new, candidate, transform, params)
    displaced = None
    if _flow_decides(residual, params, flow_until):
        displaced = _displaced(new, candidate, transform, params)
    return Alignment(residual, displaced, len(windows))


def _coarser_pixel(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64]
) -> float:
    """One pixel of the coarser of the two images, in the new image's (enlarged) pixels."""
    candidate_pixel = candidate.scale * float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    return max(new.scale, candidate_pixel)


def _normalised(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Local contrast normalisation: each pixel less its neighbourhood's mean, over its
    neighbourhood's deviation (brightness, contrast, gamma and colour edits cancel out)."""
    centred = image - _blurred(image, FLOW_NORMALISE_SIGMA)
    spread = np.sqrt(_blurred(centred * centred, FLOW_NORMALISE_SIGMA))
    return np.asarray(centred / (spread + 2.0), np.float32)


def _no_flow(image: Grey) -> npt.NDArray[np.float32]:
    """The flow field DIS writes into (not used as a start: no initial flow is set)."""
    return np.zeros((*image.shape, 2), np.float32)


def displaced_fraction(
    new: Grey,
    candidate: Grey,
    transform: npt.NDArray[np.float64],
    params: MatchParams,
    pixel: float = 1.0,
) -> float | None:
    """The fraction of the aligned overlap's textured pixels that are displaced.

    After the affine alignment a copy or an edit lines up everywhere its content is
    shared (added content, a caption or a sticker, has no counterpart to move to), while
    another shot of the scene leaves local displacements: parallax shifts the foreground
    against the background, a burst moves its subjects. Dense optical flow (DIS) between
    the aligned, locally normalised images finds them; a pixel counts as displaced when
    the flow moves it more than ``flow_min_shift`` and following the flow explains the
    difference (its error drops to at most FLOW_EXPLAINS of the error in place), so
    spurious flow on new or missing content does not count. None: too little texture.
    """
    h, w = new.shape
    # At most FLOW_SIDE, and no finer than the coarser image: a thumbnail's pixel is one
    # flow pixel, so a shift is counted in pixels that both images have.
    shrink = min(1.0, FLOW_SIDE / max(h, w), 1.0 / max(1.0, pixel))
    size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
    warped = np.asarray(
        cv2.warpAffine(candidate, transform, (w, h), flags=cv2.INTER_LINEAR), np.uint8
    )
    inside = cv2.warpAffine(
        np.ones(candidate.shape, np.uint8), transform, (w, h), flags=cv2.INTER_NEAREST
    )
    small_inside = cv2.resize(inside, size, interpolation=cv2.INTER_NEAREST)
    margin = int(3 * FLOW_NORMALISE_SIGMA)
    small_inside = cv2.erode(small_inside, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    # Compared at the coarser image's resolution, impulse noise removed first.
    sigma = params.blur_sigma * max(1.0, pixel * shrink) / 2

    def prepared(image: Grey) -> npt.NDArray[np.float32]:
        small = cv2.resize(cv2.medianBlur(image, 3), size, interpolation=cv2.INTER_AREA)
        return _blurred(small, sigma)

    a, b = prepared(new), prepared(warped)
    texture_a = np.sqrt(
        _blurred((a - _blurred(a, FLOW_NORMALISE_SIGMA)) ** 2, FLOW_NORMALISE_SIGMA)
    )
    texture_b = np.sqrt(
        _blurred((b - _blurred(b, FLOW_NORMALISE_SIGMA)) ** 2, FLOW_NORMALISE_SIGMA)
    )
    textured = (
        (small_inside > 0)
        & (texture_a >= params.min_window_std)
        & (texture_b >= params.min_window_std)
    )
    count = int(textured.sum())
    if count < FLOW_MIN_PIXELS:
        return None
    na, nb = _normalised(a), _normalised(b)
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    # DIS matches mean-normalised patches: brightness edits do not move it.
    ua, ub = np.clip(a, 0, 255).astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8)
    flow = np.asarray(dis.calc(ua, ub, _no_flow(ua)), np.float32)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    # Forward-backward check: flow that wanders (smooth or blurred areas, along an edge)
    # does not come back to where it started.
    back = np.asarray(dis.calc(ub, ua, _no_flow(ua)), np.float32)
    returned = cv2.remap(back, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    consistent = np.hypot(flow[..., 0] + returned[..., 0], flow[..., 1] + returned[..., 1])
    followed = cv2.remap(nb, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    in_place = _blurred(np.abs(na - nb), 2.0)
    after = _blurred(np.abs(na - followed), 2.0)
    shift = np.hypot(flow[..., 0], flow[..., 1])
    displaced = (
        textured
        & (consistent <= FLOW_CONSISTENCY)
        & (shift > params.flow_min_shift)
        & (in_place >= FLOW_MIN_ERROR)
        & (after <= FLOW_EXPLAINS * in_place)
    )
    # Displaced content is a region (an object, a foreground): isolated pixels are noise.
    kernel = np.ones((FLOW_OPEN, FLOW_OPEN), np.uint8)
    displaced = cv2.morphologyEx(displaced.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    return int(displaced.sum()) / count
