"""The matcher: geometric proof of every remaining candidate on the working copies.

One CandidateGroup in (dedup.embedded.v1), the same group out (dedup.matched.v1) with a
verdict on every candidate that earlier stages left open:

- DUPLICATE: at least ``min_inliers`` RANSAC inliers and, after warping the candidate
  onto the new image, an aligned residual of at most ``max_residual`` (a copy or an edit
  of the same capture);
- SIMILAR: as many inliers but a larger residual, or more than ``max_displaced`` of the
  aligned overlap displaced (optical flow: parallax, motion): another shot of the same
  scene (a burst, a stereo pair, another angle); reported, never merged;
- REJECTED: too few inliers (no geometric match), or a working copy that cannot be
  read (the reason says which).

``scores.inliers``, ``inlier_ratio`` and ``aligned_residual`` are recorded on every
candidate matched. Candidates already REJECTED are not matched again. Groups of
unreadable or deleted images pass through (a deleted image also leaves the cache).

Pure: working copies come through an injected ``fetch(url) -> bytes`` (nothing reads an
original); features are cached by image id; the CPU work (features, matching, RANSAC,
alignment) runs in a worker thread so that the event loop stays responsive. The new
image's features are always computed afresh (an overwritten blob keeps its image id),
so redelivery gives the same verdicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from dedup.runtime import Output
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Verdict
from services.matcher.cache import ViewCache
from services.matcher.geometry import ImageView, MatchParams, MatchResult, match, view_of_bytes

STAGE: Final = "matcher"


class WorkingCopyUnavailable(Exception):
    """A working copy that is gone, not in our storage, or not an image."""


# url -> the working copy's bytes. Raises WorkingCopyUnavailable when it is missing or
# refused, TransientError when the storage cannot be reached (the runtime retries).
FetchWorkingCopy = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    min_inliers: int = 12
    max_residual: float = 0.2
    # The most of the aligned overlap's textured pixels that optical flow may find
    # displaced (geometry.displaced_fraction) for a DUPLICATE.
    max_displaced: float = 0.1


def judge(result: MatchResult, policy: MatchPolicy) -> tuple[Verdict.ValueType, str]:
    """The verdict and its reason for one match result."""
    how = f"{result.inliers} inliers of {result.matches} matches"
    if result.mirrored:
        how += ", mirrored"
    if result.inliers < policy.min_inliers:
        return Verdict.VERDICT_REJECTED, f"no geometric match: {how} (< {policy.min_inliers})"
    if result.residual is None:
        # Too small or too flat to compare after alignment: the inliers are all the proof.
        return Verdict.VERDICT_DUPLICATE, f"{how}; too little texture to check the alignment"
    if result.residual > policy.max_residual:
        return (
            Verdict.VERDICT_SIMILAR,
            f"same scene, another capture: {how} but aligned residual {result.residual:.3f}"
            f" > {policy.max_residual:.3f}",
        )
    if result.displaced is not None and result.displaced > policy.max_displaced:
        return (
            Verdict.VERDICT_SIMILAR,
            f"same scene, another capture: {how}, aligned residual {result.residual:.3f}, but"
            f" {result.displaced:.1%} of it displaced after alignment"
            f" > {policy.max_displaced:.1%} (parallax or motion)",
        )
    return (
        Verdict.VERDICT_DUPLICATE,
        f"{how}; aligned residual {result.residual:.3f} <= {policy.max_residual:.3f}",
    )


def record(candidate: Candidate, result: MatchResult, policy: MatchPolicy) -> None:
    candidate.scores.inliers = result.inliers
    candidate.scores.inlier_ratio = result.inlier_ratio
    if result.residual is not None:
        candidate.scores.aligned_residual = result.residual
    candidate.verdict, candidate.reason = judge(result, policy)
    candidate.decided_by = STAGE


def reject(candidate: Candidate, reason: str) -> None:
    candidate.verdict = Verdict.VERDICT_REJECTED
    candidate.decided_by = STAGE
    candidate.reason = reason


class Matcher:
    def __init__(
        self,
        fetch: FetchWorkingCopy,
        params: MatchParams,
        policy: MatchPolicy,
        cache: ViewCache,
    ) -> None:
        self._fetch = fetch
        self._params = params
        self._policy = policy
        self._cache = cache

    @property
    def params(self) -> MatchParams:
        return self._params

    @property
    def policy(self) -> MatchPolicy:
        return self._policy

    @property
    def cache(self) -> ViewCache:
        return self._cache

    async def handle(self, group: CandidateGroup) -> Sequence[Output]:
        return [Output(group.image_id, await self.matched(group))]

    async def matched(self, group: CandidateGroup) -> CandidateGroup:
        """The group as the matcher passes it on (a copy; ``group`` is not changed)."""
        out = CandidateGroup()
        out.CopyFrom(group)
        out.stages.append(STAGE)
        status = out.image.status
        if status == ImageStatus.IMAGE_STATUS_DELETED:
            self._cache.drop(out.image_id)
        open_ = [c for c in out.candidates if c.verdict != Verdict.VERDICT_REJECTED]
        if status != ImageStatus.IMAGE_STATUS_OK or not open_:
            return out
        try:
            new = await self._view(out.image_id, out.image.working_copy_url, fresh=True)
        except WorkingCopyUnavailable as error:
            for candidate in open_:
                reject(candidate, f"the new image's working copy is unavailable: {error}")
            return out
        for candidate in open_:
            try:
                theirs = await self._view(candidate.image_id, candidate.working_copy_url)
            except WorkingCopyUnavailable as error:
                reject(candidate, f"the candidate's working copy is unavailable: {error}")
                continue
            result = await asyncio.to_thread(match, new, theirs, self._params)
            record(candidate, result, self._policy)
        return out

    async def _view(self, image_id: str, url: str, *, fresh: bool = False) -> ImageView:
        if not fresh and (cached := self._cache.get(image_id)) is not None:
            return cached
        if not url:
            raise WorkingCopyUnavailable("no working copy URL")
        data = await self._fetch(url)
        try:
            view = await asyncio.to_thread(view_of_bytes, data, self._params)
        except ValueError as error:
            raise WorkingCopyUnavailable(str(error)) from error
        self._cache.put(image_id, view)
        return view
