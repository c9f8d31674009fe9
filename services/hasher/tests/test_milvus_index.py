"""MilvusHashIndex's batching of stores and searches, with a fake client (the real Milvus
is tests/integration/test_hasher_index.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.hasher.index import IndexedImage, Radii
from services.hasher.milvus_index import (
    HashIndexConfig,
    MilvusHashIndex,
    hash_index_config,
    to_row,
)


def image(image_id: str, fill: int) -> IndexedImage:
    return IndexedImage(
        image_id=image_id, blob_url="", e_tag="", pdq=bytes([fill]) * 32,
        wavelet=bytes([fill]) * 32, pdq_quality=90, quality=0.5, width=1, height=1,
        size_bytes=1, colour_signature=b"", greyscale=False, working_copy_url="",
    )  # fmt: skip


class FakeClient:
    """Upserts kept by id; every search returns every stored record (the caller scores)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, int]] = []

    async def get(self, collection: str, ids: list[str], **_: Any) -> list[dict[str, Any]]:
        self.calls.append(("get", len(ids)))
        return [{"id": i} for i in ids if i in self.rows]

    async def insert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self.calls.append(("insert", len(rows)))
        self.rows |= {r["id"]: r for r in rows}

    async def upsert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self.calls.append(("upsert", len(rows)))
        self.rows |= {r["id"]: r for r in rows}

    async def search(self, collection: str, data: list[bytes], anns_field: str,
                     **_: Any) -> list[list[dict[str, Any]]]:  # fmt: skip
        self.calls.append((f"search {anns_field}", len(data)))
        hits = [{"id": i, "entity": r} for i, r in self.rows.items()]
        return [hits for _ in data]


async def test_an_added_image_is_stored_and_only_searching_jobs_search() -> None:
    client = FakeClient()
    index = MilvusHashIndex(client, "c", Radii(10, 10, 8))
    a, b = image("a", 1), image("b", 2)

    found = await asyncio.gather(index.add(a), index.add_and_search(b, [b.pdq, b.pdq]))

    assert found[0] is None and sorted(x.image_id for x in found[1]) == ["a", "b"]
    assert client.rows == {"a": to_row(a), "b": to_row(b)}
    # One insert of both (neither was stored); b's two PDQ variants and one wavelet hash
    # searched, not a's.
    assert client.calls == [("get", 2), ("insert", 2), ("search pdq", 2), ("search wavelet", 1)]


async def test_a_batch_of_adds_searches_nothing() -> None:
    client = FakeClient()
    index = MilvusHashIndex(client, "c", Radii(10, 10, 8))
    await asyncio.gather(index.add(image("a", 1)), index.add(image("b", 2)))
    assert client.calls == [("get", 2), ("insert", 2)]


async def test_a_stored_image_is_upserted_and_a_new_one_inserted() -> None:
    client = FakeClient()
    index = MilvusHashIndex(client, "c", Radii(10, 10, 8))
    await index.add(image("a", 1))
    client.calls.clear()
    # A redelivered a (a new version of it) and a new b, in one batch.
    await asyncio.gather(index.add(image("a", 3)), index.add(image("b", 2)))
    assert client.calls == [("get", 2), ("insert", 1), ("upsert", 1)]
    assert client.rows["a"] == to_row(image("a", 3))


def test_hash_index_parameters_per_type() -> None:
    assert hash_index_config("BIN_FLAT") == HashIndexConfig("BIN_FLAT", {}, {})
    ivf = hash_index_config("BIN_IVF_FLAT", nlist=64, nprobe=128)
    assert (ivf.build, ivf.search) == ({"nlist": 64}, {"nprobe": 64})
    with pytest.raises(ValueError, match="unsupported"):
        hash_index_config("HNSW")


async def test_the_range_search_carries_the_index_search_parameters() -> None:
    client = FakeClient()
    seen: list[dict[str, Any]] = []
    search = client.search

    async def recording(*args: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
        seen.append(kwargs["search_params"])
        return await search(*args, **kwargs)

    client.search = recording  # type: ignore[method-assign]
    config = hash_index_config("BIN_IVF_FLAT", nlist=16, nprobe=8)
    index = MilvusHashIndex(client, "c", Radii(10, 5, 8), index=config)
    await index.search(image("a", 1), [bytes(32)])
    assert seen == [
        {"metric_type": "HAMMING", "params": {"radius": 11, "nprobe": 8}},
        {"metric_type": "HAMMING", "params": {"radius": 6, "nprobe": 8}},
    ]
