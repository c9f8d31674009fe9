"""How the two copies of a DUPLICATE pair derive from each other, from their alignment.

The matcher has just aligned the pair (``transform``: the candidate's pixels onto the new
image's), so it can say what each copy shows of the other (pure, CPU, working copies):

- **shared content**: the share of each one's frame that the other shows too. A crop
  shows only part of its original's; the ranker also turns it into pixels of the shared
  content (a downscale has fewer).
- **crop or frame**: when one copy shows more than the other, its extra part is either
  picture (the other is a CROP of it) or flat (a frame or bars of some colour added to
  the other's content: this one is a FRAME copy).
- **overlay**: windows of the overlap where one copy has strong structure that the other
  lacks, and the two disagree: a caption, a logo or a mark added over the shared content
  (OVERLAY). A blurred or noisy copy disagrees nowhere in particular (both images are
  compared at the coarser one's detail), another shot is not a DUPLICATE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from dedup.v1.groups_pb2 import Derivation
from services.matcher.geometry import ImageView, Windows, match_sharpness

NONE = Derivation.DERIVATION_UNSPECIFIED
CROP = Derivation.DERIVATION_CROP
FRAME = Derivation.DERIVATION_FRAME
OVERLAY = Derivation.DERIVATION_OVERLAY

# A copy that shows at least this share of the other's content shows all of it (edges
# resampled, a pixel or two of the alignment).
WHOLE: Final = 0.96
# ... and one showing less than this of the other's shows only part of it (a crop).
PART: Final = 0.92
# The unshared part is flat (a frame) when this share of its pixels lies within
# FLAT_LEVELS grey levels of its median.
FLAT_SHARE: Final = 0.9
FLAT_LEVELS: Final = 10.0
# ... leaving out this share of the longer side along the overlap's edge.
EDGE_MARGIN: Final = 0.01
# Overlays are looked for at most OVERLAY_SIDE px across, in windows of about
# 1/OVERLAY_ACROSS of the longer side, compared after a blur of
# OVERLAY_SIGMA px; one copy's detail (Laplacian energy) at least OVERLAY_DETAIL times the
# other's where their correlation is below OVERLAY_CORRELATION.
OVERLAY_SIDE: Final = 256
OVERLAY_ACROSS: Final = 24
OVERLAY_SIGMA: Final = 1.0
OVERLAY_DETAIL: Final = 4.0
OVERLAY_CORRELATION: Final = 0.5
# Such windows must be at least this many, and this share of the overlap's, and
# outnumber those of the other copy this many times over.
OVERLAY_MIN_WINDOWS: Final = 2
OVERLAY_MIN_SHARE: Final = 0.005
OVERLAY_DOMINANCE: Final = 3.0
# A window whose lacking side has this share of its pixels within CLIP_LEVELS of black or
# white lost its structure to clipping.
OVERLAY_CLIPPED: Final = 0.3
CLIP_LEVELS: Final = 3
# A window with less grey-level deviation than this has no structure.
FLAT_STD: Final = 3.0


@dataclass(frozen=True, slots=True)
class Provenance:
    """Pixel evidence of how a DUPLICATE pair's copies derive from each other."""

    shared_new: float  # share of the new image's content that the candidate shows too
    shared_candidate: float
    new: Derivation.ValueType = NONE  # how the new image derives from the candidate
    candidate: Derivation.ValueType = NONE

    def reversed(self) -> Provenance:
        """The same evidence with the two images' roles swapped."""
        return Provenance(self.shared_candidate, self.shared_new, self.candidate, self.new)


def _frame(view: ImageView) -> npt.NDArray[np.float32]:
    h, w = view.grey.shape
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def shared_shares(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """(share of new's frame, share of candidate's frame) that both show: bars count as
    the copy's own (a framed copy shows more than its original, all of it flat)."""
    moved = _frame(candidate) @ transform[:, :2].T.astype(np.float32)
    moved += transform[:, 2].astype(np.float32)
    overlap, _ = cv2.intersectConvexConvex(_frame(new), moved.astype(np.float32))
    scale = abs(float(np.linalg.det(transform[:, :2])))
    new_area = float(new.grey.size)
    candidate_area = float(candidate.grey.size) * scale
    if new_area <= 0 or candidate_area <= 0:
        return 0.0, 0.0
    return min(1.0, overlap / new_area), min(1.0, overlap / candidate_area)


def _flat_outside(view: ImageView, inside: npt.NDArray[np.uint8]) -> bool:
    """Whether the part of ``view``'s content outside ``inside`` is flat (a frame), a
    margin along the overlap's edge left out (resampling and the alignment blur it)."""
    margin = max(2, round(max(view.grey.shape) * EDGE_MARGIN))
    grown = cv2.dilate(inside, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    rest = view.grey[grown == 0]
    if rest.size == 0:
        return False
    spread = np.abs(rest.astype(np.float32) - float(np.median(rest)))
    return float(np.mean(spread <= FLAT_LEVELS)) >= FLAT_SHARE


def _overlap_mask(shape: tuple[int, int], source: ImageView, transform: npt.NDArray[np.float64]
                  ) -> npt.NDArray[np.uint8]:  # fmt: skip
    """Where ``source``'s pixels land in an image of ``shape`` under ``transform``."""
    content = np.ones(source.grey.shape, np.uint8)
    h, w = shape
    return np.asarray(cv2.warpAffine(content, transform, (w, h), flags=cv2.INTER_NEAREST), np.uint8)


def crop_or_frame(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64],
    shares: tuple[float, float],
) -> tuple[Derivation.ValueType, Derivation.ValueType]:  # fmt: skip
    """(how new derives, how candidate derives) from what one shows and the other lacks."""
    shared_new, shared_candidate = shares
    if shared_new >= WHOLE and shared_candidate < PART:
        bigger, inverse = candidate, cv2.invertAffineTransform(transform)
        mask = _overlap_mask(candidate.grey.shape, new, np.asarray(inverse, np.float64))
        return (NONE, FRAME) if _flat_outside(bigger, mask) else (CROP, NONE)
    if shared_candidate >= WHOLE and shared_new < PART:
        mask = _overlap_mask(new.grey.shape, candidate, transform)
        return (FRAME, NONE) if _flat_outside(new, mask) else (NONE, CROP)
    return NONE, NONE


def overlay(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64]
) -> tuple[Derivation.ValueType, Derivation.ValueType]:
    """(how new derives, how candidate derives): OVERLAY for the copy that has structure
    the other lacks over their shared content. Compared at most OVERLAY_SIDE px across: a
    caption or a logo is large, pixel-fine noise and JPEG blocks are not."""
    h, w = new.grey.shape
    warped = cv2.warpAffine(candidate.grey, transform, (w, h), flags=cv2.INTER_LINEAR)
    inside = _overlap_mask((h, w), candidate, transform)
    top, bottom, left, right = new.content  # bars are flat: nothing to overlay on them
    inside[:top], inside[bottom:], inside[:, :left], inside[:, right:] = 0, 0, 0, 0
    shrink = min(1.0, OVERLAY_SIDE / max(h, w))
    size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
    a = cv2.resize(new.grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(warped, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    inside = np.asarray(cv2.resize(inside, size, interpolation=cv2.INTER_NEAREST), np.uint8)
    clipped_a, clipped_b = _clipped(a), _clipped(b)
    h, w = a.shape
    k = max(8, round(max(h, w) / OVERLAY_ACROSS))
    # Windows clear of the overlap's edge by half a window: an alignment a pixel off puts
    # the other's frame (or nothing) beside the picture there.
    windows = Windows(h, w, k, cv2.erode(inside, np.ones((k + 1, k + 1), np.uint8)))
    a = np.asarray(cv2.GaussianBlur(a, (0, 0), OVERLAY_SIGMA), np.float32)
    b = np.asarray(cv2.GaussianBlur(b, (0, 0), OVERLAY_SIGMA), np.float32)
    # At the detail both have: a blurred copy lacks fine texture everywhere, not a caption.
    a, b = match_sharpness(a, b, windows, FLAT_STD**2)
    wa, wb = windows.of(a), windows.of(b)
    if len(wa) == 0:
        return NONE, NONE
    da, db = wa - wa.mean(axis=1, keepdims=True), wb - wb.mean(axis=1, keepdims=True)
    sa, sb = np.sqrt((da * da).mean(axis=1)), np.sqrt((db * db).mean(axis=1))
    corr = (da * db).mean(axis=1) / np.maximum(sa * sb, 1e-6)
    corr[(sa < FLAT_STD) | (sb < FLAT_STD)] = 0.0  # structure on one side only
    energy_a = (windows.of(cv2.Laplacian(a, cv2.CV_32F)) ** 2).mean(axis=1)
    energy_b = (windows.of(cv2.Laplacian(b, cv2.CV_32F)) ** 2).mean(axis=1)
    disagree = corr < OVERLAY_CORRELATION
    # Structure lost to clipping (a brightened sky, crushed shadows) is no overlay.
    lost_a, lost_b = windows.of(clipped_a).mean(axis=1), windows.of(clipped_b).mean(axis=1)
    more_a = disagree & (sa >= FLAT_STD) & (energy_a > OVERLAY_DETAIL * energy_b)
    more_b = disagree & (sb >= FLAT_STD) & (energy_b > OVERLAY_DETAIL * energy_a)
    more_a = int((more_a & (lost_b < OVERLAY_CLIPPED)).sum())
    more_b = int((more_b & (lost_a < OVERLAY_CLIPPED)).sum())
    enough = max(OVERLAY_MIN_WINDOWS, OVERLAY_MIN_SHARE * len(wa))
    if more_a >= enough and more_a >= OVERLAY_DOMINANCE * more_b:
        return OVERLAY, NONE
    if more_b >= enough and more_b >= OVERLAY_DOMINANCE * more_a:
        return NONE, OVERLAY
    return NONE, NONE


def _clipped(grey: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """1 where the grey level is at (or near) black or white, else 0."""
    return ((grey <= CLIP_LEVELS) | (grey >= 255 - CLIP_LEVELS)).astype(np.float32)


def provenance(
    new: ImageView, candidate: ImageView, transform: npt.NDArray[np.float64]
) -> Provenance:
    """What the aligned pair says of which copy derives from which."""
    shares = shared_shares(new, candidate, transform)
    new_derives, candidate_derives = crop_or_frame(new, candidate, transform, shares)
    found = Provenance(shares[0], shares[1], new_derives, candidate_derives)
    if new_derives == NONE and candidate_derives == NONE:
        new_derives, candidate_derives = overlay(new, candidate, transform)
        found = replace(found, new=new_derives, candidate=candidate_derives)
    return found
