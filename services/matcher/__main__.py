"""`python -m services.matcher`: embedded groups in, matched groups out."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dedup.blob import BlobMissingError, Blobs, BlobTooLargeError, blob_store
from dedup.runtime import Stage, main
from dedup.v1.groups_pb2 import CandidateGroup
from services.matcher.cache import ViewCache
from services.matcher.geometry import MatchParams
from services.matcher.handler import (
    STAGE,
    FetchWorkingCopy,
    Matcher,
    MatchPolicy,
    WorkingCopyUnavailable,
)
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
        min_side=settings.min_side,
        ratio=settings.ratio,
        ransac_threshold=settings.ransac_threshold,
    )
    policy = MatchPolicy(
        min_inliers=settings.min_inliers,
        max_residual=settings.max_residual,
        max_displaced=settings.max_displaced,
    )
    return Matcher(fetch, params, policy, ViewCache(settings.cache_bytes))


@asynccontextmanager
async def open_stage(
    settings: MatcherSettings, blobs: Blobs | None = None
) -> AsyncIterator[Stage[CandidateGroup]]:
    """`blobs`: the storage to use instead of the account in `settings` (`dedup scan`)."""
    async with blob_store(settings, STAGE, blobs) as store:
        matcher = matcher_of(settings, working_copy_reader(store, settings.working_copy_max_bytes))
        yield Stage(STAGE, CandidateGroup, matcher.handle)


if __name__ == "__main__":
    main(STAGE, MatcherSettings(), open_stage)
