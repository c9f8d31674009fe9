"""The matcher's stage: its handler with the clients and metrics it needs.

Embedded groups in, matched groups out. `python -m services.matcher` runs it with the Kafka
runner (__main__.py); `dedup scan` opens it in its own process, with no Kafka.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dedup.blob import BlobMissingError, Blobs, BlobTooLargeError, blob_store
from dedup.runtime.contract import Stage
from dedup.v1.groups_pb2 import CandidateGroup
from services.matcher.cache import PairCache, ViewCache
from services.matcher.geometry import MatchParams, MatchPolicy
from services.matcher.handler import STAGE, FetchWorkingCopy, Matcher, WorkingCopyUnavailable
from services.matcher.settings import MatcherSettings


def working_copy_reader(blobs: Blobs, max_bytes: int) -> FetchWorkingCopy:
    """Read working copies by URL from our own storage account (never an original)."""

    async def fetch(url: str) -> bytes:
        where = blobs.locate(url)
        if where is None:
            raise WorkingCopyUnavailable(f"{url} is not in this storage account")
        try:
            return await blobs.download(*where, max_bytes)
        except (BlobMissingError, BlobTooLargeError) as error:
            raise WorkingCopyUnavailable(str(error)) from error

    return fetch


def matcher_of(settings: MatcherSettings, fetch: FetchWorkingCopy) -> Matcher:
    params = MatchParams(
        detector=settings.detector,
        max_features=settings.max_features,
        first_features=settings.first_features,
        min_side=settings.min_side,
        ratio=settings.ratio,
        ransac_threshold=settings.ransac_threshold,
        descriptor_matching=settings.descriptor_matching,
        screen_inliers=settings.screen_inliers,
        skip_decided=settings.skip_decided,
        refine_until=settings.refine_until,
        flow_above=settings.flow_above,
    )
    policy = MatchPolicy(
        min_inliers=settings.min_inliers,
        min_unchecked_inliers=settings.min_unchecked_inliers,
        max_residual=settings.max_residual,
        max_displaced=settings.max_displaced,
        min_spread=settings.min_spread,
        aligned_max_pdq=settings.aligned_max_pdq,
        aligned_aspect_tolerance=settings.aligned_aspect_tolerance,
        aligned_max_residual=settings.aligned_max_residual,
    )
    return Matcher(
        fetch,
        params,
        policy,
        ViewCache(settings.cache_bytes),
        PairCache(settings.pair_cache_bytes),
    )


@asynccontextmanager
async def open_stage(
    settings: MatcherSettings, blobs: Blobs | None = None
) -> AsyncIterator[Stage[CandidateGroup]]:
    """`blobs`: the storage to use instead of the account in `settings` (`dedup scan`)."""
    async with blob_store(settings, STAGE, blobs) as store:
        matcher = matcher_of(settings, working_copy_reader(store, settings.working_copy_max_bytes))
        yield Stage(STAGE, CandidateGroup, matcher.handle)
