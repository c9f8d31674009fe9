"""The verifier: the colour check of every hash candidate against the new image.

One CandidateGroup in (dedup.hashed.v1), the same group out (dedup.verified.v1) with
``scores.colour_distance`` on every candidate whose colour signature is known, and the
candidates that fail the colour policy (``colour_check.py``) REJECTED by "verifier" with
the numbers in the reason. Nothing else changes: the verifier never proves a duplicate.

Groups of unreadable or deleted images, groups without candidates and candidates
without a colour signature pass through untouched (but for the stage name), so every
image still reaches the ranker. Pure: no I/O at all; idempotent by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from dedup.colour import ColourSignature
from dedup.imaging import DIHEDRAL
from dedup.runtime.contract import Output
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Verdict
from services.verifier.colour_check import ColourPolicy, check

STAGE: Final = "verifier"
TEST: Final = "colour"  # Candidate.test of the verifier's only check


def signature(data: bytes) -> ColourSignature | None:
    """The signature in ``data``, or None when it is absent or not one we can read."""
    if not data:
        return None
    try:
        return ColourSignature.from_bytes(data)
    except ValueError:
        return None


def verify_candidate(new: ColourSignature, candidate: Candidate, policy: ColourPolicy) -> None:
    """Record the colour distance on ``candidate`` and reject it if the policy says so."""
    theirs = signature(candidate.colour_signature)
    if theirs is None:
        return
    transform: int | None = candidate.scores.pdq_transform
    if not candidate.scores.HasField("pdq_transform") or transform not in range(len(DIHEDRAL)):
        transform = None
    result = check(new, theirs, policy, transform)
    candidate.scores.colour_distance = result.colour_distance
    if result.rejected and candidate.verdict != Verdict.VERDICT_REJECTED:
        candidate.verdict = Verdict.VERDICT_REJECTED
        candidate.decided_by = STAGE
        candidate.test = TEST
        candidate.reason = result.reason


def verify(group: CandidateGroup, policy: ColourPolicy) -> CandidateGroup:
    """The group as the verifier passes it on (a copy; ``group`` is not changed)."""
    out = CandidateGroup()
    out.CopyFrom(group)
    out.stages.append(STAGE)
    if out.image.status != ImageStatus.IMAGE_STATUS_OK or not out.candidates:
        return out
    new = signature(out.image.colour_signature)
    if new is None:
        return out
    for candidate in out.candidates:
        verify_candidate(new, candidate, policy)
    return out


class Verifier:
    def __init__(self, policy: ColourPolicy) -> None:
        self._policy = policy

    async def handle(self, group: CandidateGroup) -> Sequence[Output]:
        # Microseconds per candidate (64-cell grids): no worker thread needed.
        return [Output(group.image_id, verify(group, self._policy))]
