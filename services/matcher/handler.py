"""The matcher: geometric proof of every remaining candidate on the working copies.

One CandidateGroup in (dedup.embedded.v1), the same group out (dedup.matched.v1) with a
verdict on every candidate that earlier stages left open (services/matcher/decide.py:
the cheapest test that can decide, named in ``Candidate.test``):

- DUPLICATE: the hashes' turn and a scale align the pair (aligned copies, no features),
  or at least ``min_inliers`` RANSAC inliers and, after warping the candidate onto the
  new image, an aligned residual of at most ``max_residual`` (a copy or an edit of the
  same capture);
- SIMILAR: as many inliers but a larger residual, or more than ``max_displaced`` of the
  aligned overlap displaced (optical flow: parallax, motion): another shot of the same
  scene (a burst, a stereo pair, another angle); reported, never merged;
- REJECTED: too few inliers (no geometric match), or a working copy that cannot be
  read (the reason says which).

``scores.inliers``, ``inlier_ratio`` and ``aligned_residual`` are recorded where measured.
Candidates already REJECTED are not matched again. Groups of unreadable or deleted
images pass through (a deleted image also leaves the cache).

Pure: working copies come through an injected ``fetch(url) -> bytes`` (nothing reads an
original). Views are cached by (image id, e_tag), the new image's too: the same version
is never decoded twice, an overwritten blob (new e_tag) is; without an e_tag the new
image is read afresh. Each pair is matched in a canonical order (by id and e_tag), so its
decision does not depend on which image came first, and a pair whose two e_tags are
known is verified once: the other direction is answered from the pair cache. The CPU
work runs in a worker thread so that the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from dedup.runtime.contract import Output
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Verdict
from services.matcher.cache import InFlight, PairCache, PairKey, Version, ViewCache, pair_key
from services.matcher.decide import Check, Decision, HashHint, decide
from services.matcher.geometry import ImageView, MatchParams, MatchPolicy, view_of_bytes

STAGE: Final = "matcher"


class WorkingCopyUnavailable(Exception):
    """A working copy that is gone, not in our storage, or not an image."""


# url -> the working copy's bytes. Raises WorkingCopyUnavailable when it is missing or
# refused, TransientError when the storage cannot be reached (the runtime retries).
FetchWorkingCopy = Callable[[str], Awaitable[bytes]]


def hint_of(candidate: Candidate) -> HashHint | None:
    """What the hashes say of the pair, if the candidate came with both scores."""
    scores = candidate.scores
    if not (scores.HasField("pdq_distance") and scores.HasField("pdq_transform")):
        return None
    return HashHint(scores.pdq_distance, scores.pdq_transform)


def record(candidate: Candidate, decision: Decision, *, new_is_ours: bool) -> None:
    """Write ``decision`` on ``candidate``; ``new_is_ours``: the decision was made with the
    group's own image as the new one (``decide_canonically``), so its provenance is ours."""
    if decision.provenance is not None:
        found = decision.provenance if new_is_ours else decision.provenance.reversed()
        candidate.scores.shared_image = found.shared_new
        candidate.scores.shared_candidate = found.shared_candidate
        candidate.scores.image_derivation = found.new
        candidate.scores.candidate_derivation = found.candidate
    if decision.inliers is not None:
        candidate.scores.inliers = decision.inliers
    if decision.inlier_ratio is not None:
        candidate.scores.inlier_ratio = decision.inlier_ratio
    if decision.residual is not None:
        candidate.scores.aligned_residual = decision.residual
    candidate.verdict = decision.verdict
    candidate.reason = decision.reason
    candidate.test = decision.test
    candidate.decided_by = STAGE


def reject(candidate: Candidate, reason: str) -> None:
    candidate.verdict = Verdict.VERDICT_REJECTED
    candidate.decided_by = STAGE
    candidate.test = Check.UNAVAILABLE
    candidate.reason = reason


def ours_first(ours: Version, theirs: Version) -> bool:
    """Whether the group's own image is the new one of the pair's canonical order."""
    return ours <= theirs


def decide_canonically(
    ours: tuple[Version, ImageView],
    theirs: tuple[Version, ImageView],
    hint: HashHint | None,
    params: MatchParams,
    policy: MatchPolicy,
) -> Decision:
    """The pair's decision with the lower (id, e_tag) as the new image: the same
    whichever of the two arrived first. A DUPLICATE whose displacement comes near its
    limit is decided the other way too, and stands only if that agrees."""
    (our_version, our_view), (their_version, their_view) = ours, theirs
    first, second, hint_first = our_view, their_view, hint
    if not ours_first(our_version, their_version):
        first, second = second, first
        hint_first = None if hint is None else hint.reversed()
    decision = decide(first, second, params, policy, hint_first)
    if not near_the_displacement_limit(decision, policy):
        return decision
    hint_second = None if hint_first is None else hint_first.reversed()
    other = decide(second, first, params, policy, hint_second)
    # Not a DUPLICATE: no provenance, which would be the other way round.
    return decision if other.verdict == Verdict.VERDICT_DUPLICATE else other


# Of ``max_displaced``: a DUPLICATE displaced beyond this share of the limit is checked the
# other way round. The flow between two aligned images is measured from the new one, so
# another shot of a scene can fall either side of the limit by which image is the new
# one (which the ids choose); a copy lines up everywhere, far below it.
DOUBTFUL_DISPLACEMENT: Final = 0.5


def near_the_displacement_limit(decision: Decision, policy: MatchPolicy) -> bool:
    return (
        decision.verdict == Verdict.VERDICT_DUPLICATE
        and decision.displaced is not None
        and decision.displaced > DOUBTFUL_DISPLACEMENT * policy.max_displaced
    )


class Matcher:
    def __init__(
        self,
        fetch: FetchWorkingCopy,
        params: MatchParams,
        policy: MatchPolicy,
        cache: ViewCache,
        pairs: PairCache | None = None,
    ) -> None:
        self._fetch = fetch
        self._params = params
        self._policy = policy
        self._cache = cache
        self._pairs = PairCache(0) if pairs is None else pairs
        self._deciding: InFlight[PairKey, Decision] = InFlight()
        self._reading: InFlight[Version, ImageView] = InFlight()

    @property
    def params(self) -> MatchParams:
        return self._params

    @property
    def policy(self) -> MatchPolicy:
        return self._policy

    @property
    def cache(self) -> ViewCache:
        return self._cache

    @property
    def pairs(self) -> PairCache:
        return self._pairs

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
        ours: Version = (out.image_id, out.image.e_tag)
        new: ImageView | None = None
        for index, candidate in enumerate(open_):
            theirs: Version = (candidate.image_id, candidate.e_tag)
            key = pair_key(ours, theirs) if ours[1] and theirs[1] else None
            first = ours_first(ours, theirs)
            if key is not None and (known := await self._known(key)) is not None:
                record(candidate, known, new_is_ours=first)
                continue
            with self._claim(key) as settle:
                try:
                    # Read only when a pair needs it (every pair may be known already).
                    if new is None:
                        new = await self._view(ours, out.image.working_copy_url, fresh=not ours[1])
                except WorkingCopyUnavailable as error:
                    for unproven in open_[index:]:
                        reject(unproven, f"the new image's working copy is unavailable: {error}")
                    return out
                try:
                    their_view = await self._view(theirs, candidate.working_copy_url)
                except WorkingCopyUnavailable as error:
                    reject(candidate, f"the candidate's working copy is unavailable: {error}")
                    continue
                decision = await asyncio.to_thread(
                    decide_canonically,
                    (ours, new),
                    (theirs, their_view),
                    hint_of(candidate),
                    self._params,
                    self._policy,
                )
                if key is not None:
                    self._pairs.put(key, decision)
                    settle(decision)
            record(candidate, decision, new_is_ours=first)
        return out

    async def _known(self, key: PairKey) -> Decision | None:
        """The pair's decision if made already or being made now (then waited for)."""
        known = self._pairs.get(key)
        return known if known is not None else await self._deciding.wait(key)

    def _claim(
        self, key: PairKey | None
    ) -> contextlib.AbstractContextManager[Callable[[Decision], None]]:
        """Claimed while decided, so that the other direction waits for the decision."""
        if key is None:
            return contextlib.nullcontext(lambda _: None)
        return self._deciding.claim(key)

    async def _view(self, version: Version, url: str, *, fresh: bool = False) -> ImageView:
        image_id, e_tag = version
        if not fresh:
            cached = self._cache.get(image_id, e_tag)
            if cached is None:
                cached = await self._reading.wait(version)
            if cached is not None:
                return cached
        with contextlib.ExitStack() as stack:
            settle = None if fresh else stack.enter_context(self._reading.claim(version))
            if not url:
                raise WorkingCopyUnavailable("no working copy URL")
            data = await self._fetch(url)
            try:
                view = await asyncio.to_thread(view_of_bytes, data, self._params)
            except ValueError as error:
                raise WorkingCopyUnavailable(str(error)) from error
            self._cache.put(image_id, view, e_tag)
            if settle is not None:
                settle(view)
            return view
