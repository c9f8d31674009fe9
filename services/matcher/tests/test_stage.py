"""The matcher's wiring: working copies read by URL from our own storage only."""

from __future__ import annotations

import pytest

from dedup.blob import BlobMissingError, BlobTooLargeError, split_blob_url
from dedup.errors import TransientError
from services.matcher.geometry import DescriptorMatching, Detector
from services.matcher.handler import WorkingCopyUnavailable
from services.matcher.settings import MatcherSettings
from services.matcher.stage import matcher_of, working_copy_reader

ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


class FakeBlobs:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.reads: list[tuple[str, str, int]] = []

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        self.reads.append((container, name, max_bytes))
        if self.error is not None:
            raise self.error
        return b"jpeg"

    async def upload(self, container: str, name: str, data: bytes, content_type: str = "") -> str:
        raise AssertionError("the matcher never writes")

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None:
        raise AssertionError("the matcher never deletes")

    def locate(self, url: str) -> tuple[str, str] | None:
        return split_blob_url(ACCOUNT, url)

    async def ensure_container(self, container: str) -> None:
        raise AssertionError("the matcher creates nothing")


async def test_a_working_copy_is_read_by_its_url_with_the_size_limit() -> None:
    blobs = FakeBlobs()
    fetch = working_copy_reader(blobs, 1234)
    assert await fetch(f"{ACCOUNT}/dedup-working/abc.jpg") == b"jpeg"
    assert blobs.reads == [("dedup-working", "abc.jpg", 1234)]


@pytest.mark.parametrize(
    "error", [BlobMissingError("gone"), BlobTooLargeError("5 GB is over the limit")]
)
async def test_missing_or_oversized_working_copies_are_unavailable(error: Exception) -> None:
    fetch = working_copy_reader(FakeBlobs(error), 1234)
    with pytest.raises(WorkingCopyUnavailable):
        await fetch(f"{ACCOUNT}/dedup-working/abc.jpg")


async def test_urls_outside_the_account_are_never_read() -> None:
    blobs = FakeBlobs()
    with pytest.raises(WorkingCopyUnavailable, match="not in this storage account"):
        await working_copy_reader(blobs, 1234)("https://elsewhere.example/c/abc.jpg")
    assert blobs.reads == []


async def test_an_unreachable_store_is_transient() -> None:
    fetch = working_copy_reader(FakeBlobs(TransientError("down")), 1234)
    with pytest.raises(TransientError):
        await fetch(f"{ACCOUNT}/dedup-working/abc.jpg")


def test_settings_reach_the_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_MATCHER_DETECTOR", "sift")
    monkeypatch.setenv("DEDUP_MATCHER_MAX_RESIDUAL", "0.3")
    monkeypatch.setenv("DEDUP_MATCHER_MAX_DISPLACED", "0.25")
    monkeypatch.setenv("DEDUP_MATCHER_CACHE_BYTES", "1000")
    monkeypatch.setenv("DEDUP_MATCHER_PAIR_CACHE_BYTES", "7000")
    monkeypatch.setenv("DEDUP_MATCHER_DESCRIPTOR_MATCHING", "brute-force")
    monkeypatch.setenv("DEDUP_MATCHER_SKIP_DECIDED", "false")
    monkeypatch.setenv("DEDUP_MATCHER_SCREEN_INLIERS", "0")
    monkeypatch.setenv("DEDUP_MATCHER_ALIGNED_MAX_PDQ", "-1")
    matcher = matcher_of(MatcherSettings(), working_copy_reader(FakeBlobs(), 1))
    assert matcher.params.detector is Detector.SIFT
    assert matcher.policy.max_residual == 0.3
    assert matcher.policy.max_displaced == 0.25
    assert matcher.cache.max_bytes == 1000
    assert matcher.pairs.max_bytes == 7000
    assert matcher.params.descriptor_matching is DescriptorMatching.BRUTE_FORCE
    assert not matcher.params.skip_decided
    assert matcher.params.screen_inliers == 0
    assert matcher.policy.aligned_max_pdq == -1
