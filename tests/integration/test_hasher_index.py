"""The hasher's Milvus index on the real (local) Milvus: two vectors per record, range
searches with the 8 PDQ turns in one call, batches, deletes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest

from dedup.settings import MilvusSettings
from dedup.vectors import open_milvus
from services.hasher.index import HashIndex, IndexedImage, MemoryHashIndex, Radii
from services.hasher.milvus_index import MilvusHashIndex

RADII = Radii(pdq=20, wavelet=10, limit=8)


def flip(data: bytes, bits: int) -> bytes:
    """`data` with its first `bits` bits inverted."""
    value = int.from_bytes(data, "big") ^ (((1 << bits) - 1) << (len(data) * 8 - bits))
    return value.to_bytes(len(data), "big")


def record(image_id: str, pdq: bytes, wavelet: bytes) -> IndexedImage:
    return IndexedImage(
        image_id=image_id,
        blob_url=f"http://blobs/uploads/{image_id}.jpg",
        e_tag="0x1",
        pdq=pdq,
        wavelet=wavelet,
        pdq_quality=90,
        quality=0.75,
        width=640,
        height=480,
        size_bytes=12345,
        colour_signature=bytes(range(256)) + bytes(24),
        greyscale=True,
        working_copy_url=f"http://blobs/working/{image_id}.jpg",
    )


@pytest.fixture(params=["milvus", "memory"])
async def index(request: pytest.FixtureRequest) -> AsyncIterator[HashIndex]:
    """The Milvus index, and the in-memory one of `dedup scan`: both answer alike."""
    if request.param == "memory":
        yield MemoryHashIndex(RADII)
        return
    client = open_milvus(MilvusSettings())
    name = f"test_hashes_{uuid.uuid4().hex[:8]}"
    index = MilvusHashIndex(client, name, RADII, "test", max_batch=4)
    await index.ensure_collection()
    try:
        yield index
    finally:
        await client.drop_collection(name)
        await client.close()


async def test_records_round_trip_and_radii_hold(index: HashIndex) -> None:
    if isinstance(index, MilvusHashIndex):
        await index.ensure_collection()  # idempotent: every replica calls it at start
    rng = np.random.default_rng(1)
    pdq, wavelet = rng.bytes(32), rng.bytes(32)
    stored = record("a", pdq, wavelet)
    assert [r.image_id for r in await index.add_and_search(stored, [pdq])] == ["a"]

    near_pdq = record("b", flip(pdq, 20), rng.bytes(32))  # 20 bits: within the radius
    far = record("c", flip(pdq, 21), flip(wavelet, 11)[:16] + rng.bytes(16))  # outside both
    assert {r.image_id for r in await index.add_and_search(near_pdq, [near_pdq.pdq])} == {"a", "b"}
    found = await index.add_and_search(far, [far.pdq])
    assert {r.image_id for r in found} == {"b", "c"}  # b is 1 bit from c: within 20

    near_wavelet = record("d", rng.bytes(32), flip(wavelet, 10))
    hits = await index.add_and_search(near_wavelet, [near_wavelet.pdq])
    by_id = {r.image_id: r for r in hits}
    assert set(by_id) == {"a", "d"}
    assert by_id["a"] == stored  # everything a later stage needs comes back intact


async def test_any_of_the_eight_variants_finds_a_turned_copy(index: HashIndex) -> None:
    rng = np.random.default_rng(2)
    stored = record("a", rng.bytes(32), rng.bytes(32))
    await index.add_and_search(stored, [stored.pdq])
    variants = [rng.bytes(32) for _ in range(8)]
    variants[5] = flip(stored.pdq, 3)  # the new image turned by transform 5 looks like a
    turned = record("t", variants[0], rng.bytes(32))
    assert {r.image_id for r in await index.add_and_search(turned, variants)} == {"a", "t"}


async def test_near_duplicates_added_together_meet(index: HashIndex) -> None:
    rng = np.random.default_rng(3)
    base = rng.bytes(32)
    # As many as one search returns (limit 8 + the image itself), in batches of 4.
    images = [record(f"n{i}", flip(base, i), rng.bytes(32)) for i in range(9)]
    results = await asyncio.gather(*(index.add_and_search(r, [r.pdq]) for r in images))
    met = {
        (r.image_id, hit.image_id) for r, hits in zip(images, results, strict=True) for hit in hits
    }
    for a in images:
        for b in images:
            if a is not b:
                assert (a.image_id, b.image_id) in met or (b.image_id, a.image_id) in met


async def test_a_deleted_record_is_not_found(index: HashIndex) -> None:
    rng = np.random.default_rng(4)
    stored = record("a", rng.bytes(32), rng.bytes(32))
    await index.add_and_search(stored, [stored.pdq])
    await index.delete("a")
    await index.delete("a")  # idempotent
    again = record("b", stored.pdq, stored.wavelet)
    assert [r.image_id for r in await index.add_and_search(again, [again.pdq])] == ["b"]


async def test_a_search_finds_what_was_stored_later_and_writes_nothing(
    index: HashIndex,
) -> None:
    rng = np.random.default_rng(5)
    first = record("a", rng.bytes(32), rng.bytes(32))
    await index.add_and_search(first, [first.pdq])
    later = record("b", flip(first.pdq, 5), rng.bytes(32))
    await index.add_and_search(later, [later.pdq])
    unstored = record("c", flip(first.pdq, 2), rng.bytes(32))

    assert {r.image_id for r in await index.search(first, [first.pdq])} == {"a", "b"}
    await index.search(unstored, [unstored.pdq])
    assert {r.image_id for r in await index.search(first, [first.pdq])} == {"a", "b"}
