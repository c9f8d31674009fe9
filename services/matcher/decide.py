"""One candidate pair's verdict by the cheapest test that can decide it (pure, CPU).

1. **Aligned copies** (``aligned-residual``): when the hashes already say the candidate
   is the new image turned by ``pdq_transform`` (PDQ distance at most
   ``aligned_max_pdq``) and both contents have the same aspect ratio once turned, the
   turn and a scale are the alignment: the residual (and, where it leaves doubt, the
   displacement) on the working copies themselves, no features. This shortcut only ever
   says DUPLICATE: anything short of a clear pass goes to the full path, which decides
   other shots (a burst frame hashes close too).
2. **The full path** (``geometry.match``): features, RANSAC, ECC where it can help,
   residual, displacement where the residual leaves doubt.

Every decision names its test (``Check``): the vocabulary of ``Candidate.test``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

import numpy as np

from dedup.imaging import DIHEDRAL, INVERSE
from dedup.v1.groups_pb2 import Verdict
from services.matcher.geometry import (
    ImageView,
    MatchParams,
    MatchPolicy,
    MatchResult,
    check_alignment,
    match,
    turn_and_scale,
)
from services.matcher.provenance import Provenance, provenance

ROTATIONS: Final = frozenset({"identity", "rot90", "rot180", "rot270"})
# The hashes' turn says whether the candidate is mirrored only this close in PDQ (of 256
# bits; unrelated pictures differ in ~128): farther, the best of the eight turns is chance,
# and the copy is tried as it is first.
MIRROR_HINT_MAX_PDQ: Final = 64


class Check(StrEnum):
    """The check that decided (``Candidate.test``)."""

    ALIGNED_RESIDUAL = "aligned-residual"  # DUPLICATE: the hashes' turn aligns, no features
    RANSAC_INLIERS = "ransac-inliers"  # REJECTED: too few inliers
    RANSAC_ONLY = "ransac-only"  # DUPLICATE on inliers alone: too small or flat to align
    RANSAC_RESIDUAL = "ransac+residual"  # DUPLICATE: features, residual (and displacement)
    RESIDUAL = "residual"  # SIMILAR: aligned, but residual above max_residual
    DISPLACEMENT = "displacement"  # SIMILAR: aligned, but part of it moved (optical flow)
    SPREAD = "spread"  # REJECTED: aligned in a band or a corner only (an overlay)
    UNAVAILABLE = "unavailable"  # REJECTED: a working copy is missing or not an image


@dataclass(frozen=True, slots=True)
class HashHint:
    """What the hashes say of a pair: ``Scores.pdq_distance`` at ``Scores.pdq_transform``."""

    distance: int
    # Index into DIHEDRAL: the candidate turned by it looks like the new image.
    turn: int

    @property
    def mirrors(self) -> bool:
        return DIHEDRAL[self.turn] not in ROTATIONS

    def reversed(self) -> HashHint:
        """The same hint with the two images' roles swapped."""
        return HashHint(self.distance, INVERSE[self.turn])


@dataclass(frozen=True, slots=True)
class Decision:
    """A pair's verdict, direction-free: the same whichever image is the new one."""

    verdict: Verdict.ValueType
    test: Check
    reason: str
    # What was measured (None: not measured by the test that decided).
    matches: int | None = None
    inliers: int | None = None
    inlier_ratio: float | None = None
    residual: float | None = None
    displaced: float | None = None
    # On a DUPLICATE: how the copies derive from each other, with the image passed to
    # ``decide`` as ``new`` (reverse it for the other direction).
    provenance: Provenance | None = None


def decide(
    new: ImageView,
    candidate: ImageView,
    params: MatchParams,
    policy: MatchPolicy,
    hint: HashHint | None = None,
) -> Decision:
    if hint is not None and hint.distance <= policy.aligned_max_pdq:
        aligned = aligned_copy(new, candidate, hint, params, policy)
        if aligned is not None:
            return aligned
    mirrored_first = hint is not None and hint.mirrors and hint.distance <= MIRROR_HINT_MAX_PDQ
    result = match(new, candidate, params, policy, mirrored_first=mirrored_first)
    decision = judge(result, policy)
    if decision.verdict == Verdict.VERDICT_DUPLICATE and result.transform is not None:
        found = provenance(new, candidate, np.asarray(result.transform, np.float64))
        decision = replace(decision, provenance=found)
    return decision


def aligned_copy(
    new: ImageView,
    candidate: ImageView,
    hint: HashHint,
    params: MatchParams,
    policy: MatchPolicy,
) -> Decision | None:
    """DUPLICATE when the hashes' turn and a scale align the pair clearly; None: the full
    path decides."""
    transform = turn_and_scale(new, candidate, hint.turn, policy.aligned_aspect_tolerance)
    if transform is None:
        return None
    aligned = check_alignment(new, candidate, transform, params, policy.aligned_max_residual)
    residual, displaced = aligned.residual, aligned.displaced
    if residual is None or residual > policy.aligned_max_residual:
        return None
    if displaced is not None and displaced > policy.max_displaced:
        return None
    # Direction-free (the pair cache answers the other direction with it): no turn named.
    how = f"PDQ distance {hint.distance}, aligned by the hashes' turn and a scale"
    moved = "" if displaced is None else f", {displaced:.1%} displaced"
    return Decision(
        Verdict.VERDICT_DUPLICATE,
        Check.ALIGNED_RESIDUAL,
        f"{how}: aligned residual {residual:.3f} <= {policy.aligned_max_residual:.3f}{moved}",
        residual=residual,
        displaced=displaced,
        provenance=provenance(new, candidate, transform),
    )


def judge(result: MatchResult, policy: MatchPolicy) -> Decision:
    """The verdict, its test and its reason for one result of the full path."""
    how = f"{result.inliers} inliers of {result.matches} matches"
    if result.mirrored:
        how += ", mirrored"

    def decision(verdict: Verdict.ValueType, test: Check, reason: str) -> Decision:
        return Decision(
            verdict,
            test,
            reason,
            matches=result.matches,
            inliers=result.inliers,
            inlier_ratio=result.inlier_ratio,
            residual=result.residual,
            displaced=result.displaced,
        )

    if result.inliers < policy.min_inliers:
        return decision(
            Verdict.VERDICT_REJECTED,
            Check.RANSAC_INLIERS,
            f"no geometric match: {how} (< {policy.min_inliers})",
        )
    if result.residual is None and result.inliers < policy.min_unchecked_inliers:
        return decision(
            Verdict.VERDICT_REJECTED,
            Check.RANSAC_ONLY,
            f"not proved: {how}, too little texture to check the alignment, and fewer"
            f" inliers than that needs (< {policy.min_unchecked_inliers})",
        )
    if result.residual is None:
        # Too small or too flat to compare after alignment: the inliers are all the proof.
        return decision(
            Verdict.VERDICT_DUPLICATE,
            Check.RANSAC_ONLY,
            f"{how}; too little texture to check the alignment",
        )
    if result.residual > policy.max_residual:
        return decision(
            Verdict.VERDICT_SIMILAR,
            Check.RESIDUAL,
            f"same scene, another capture: {how} but aligned residual {result.residual:.3f}"
            f" > {policy.max_residual:.3f}",
        )
    if result.spread is not None and result.spread < policy.min_spread:
        return decision(
            Verdict.VERDICT_REJECTED,
            Check.SPREAD,
            f"no proof beyond an overlay: {how}, aligned residual {result.residual:.3f}, but"
            f" on textured windows spanning {result.spread:.0%} of either picture"
            f" (< {policy.min_spread:.0%}): a caption or a logo both carry?",
        )
    if result.displaced is not None and result.displaced > policy.max_displaced:
        return decision(
            Verdict.VERDICT_SIMILAR,
            Check.DISPLACEMENT,
            f"same scene, another capture: {how}, aligned residual {result.residual:.3f}, but"
            f" {result.displaced:.1%} of it displaced after alignment"
            f" > {policy.max_displaced:.1%} (parallax or motion)",
        )
    return decision(
        Verdict.VERDICT_DUPLICATE,
        Check.RANSAC_RESIDUAL,
        f"{how}; aligned residual {result.residual:.3f} <= {policy.max_residual:.3f}",
    )
