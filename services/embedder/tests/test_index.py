"""The Milvus index wrapper: batched calls, each caller's own answer, Milvus down = transient."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from pymilvus.exceptions import MilvusUnavailableException

from dedup.errors import TransientError
from services.embedder.handler import Embedder
from services.embedder.index import MemoryEmbeddingIndex, StoredImage, index_config
from services.embedder.milvus_index import MilvusEmbeddingIndex
from services.embedder.tests.fakes import FakeBlobs, fake_embed
from services.embedder.tests.test_handler import CONFIG, group, jpeg, photo


class FakeMilvus:
    """Records calls; answers a search with one hit per query vector, a get with stored ids."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.calls: list[tuple[str, int]] = []

    def _check(self) -> None:
        if self.down:
            raise MilvusUnavailableException(message="connection refused")

    async def upsert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self._check()
        self.calls.append(("upsert", len(rows)))

    async def insert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self._check()
        self.calls.append(("insert", len(rows)))

    async def search(self, collection: str, data: list[list[float]], **_: Any) -> list[Any]:
        self._check()
        self.calls.append(("search", len(data)))
        entity = {
            "blob_url": "b",
            "working_copy_url": "w",
            "quality": 0.5,
            "colour_signature": "0a",
            "greyscale": False,
            "e_tag": "0x1",
        }
        return [[{"id": f"hit{v[0]:.0f}", "distance": 0.9, "entity": entity}] for v in data]

    async def get(
        self, collection: str, ids: list[str], output_fields: list[str], **_: Any
    ) -> list[dict[str, Any]]:
        self._check()
        self.calls.append(("get", len(ids)))
        if output_fields == ["e_tag"]:
            return [{"id": i, "e_tag": "0x1"} for i in ids if i != "missing"]
        return [{"id": i, "embedding": [1.0, 0.0]} for i in ids if i != "missing"]


def index_on(milvus: FakeMilvus) -> MilvusEmbeddingIndex:
    return MilvusEmbeddingIndex(milvus, "c", 2, index_config("FLAT"), batch_delay_seconds=0.001)


def stored(image_id: str) -> StoredImage:
    return StoredImage(image_id, "b", "w", 0.5, b"\x0a", False)


async def test_concurrent_calls_become_one_call_each_with_its_own_answer() -> None:
    milvus = FakeMilvus()
    index = index_on(milvus)
    vectors = [np.array([i, 0], np.float32) for i in range(5)]
    await asyncio.gather(*(index.upsert(stored(f"i{i}"), v) for i, v in enumerate(vectors)))
    found = await asyncio.gather(*(index.search(v, 3) for v in vectors))
    got = await asyncio.gather(index.vectors(["a", "missing"]), index.vectors(["a", "b"]))
    versions = await asyncio.gather(
        index.embedding_of("a", "0x1"), index.embedding_of("a", "0x2"), index.embedding_of("a", "")
    )
    await index.aclose()
    # The store: which ids are stored (the fake says all), then one upsert of them; the
    # versions in one call (a, a), then the vector of the one that matched.
    assert milvus.calls == [
        ("get", 5), ("upsert", 5), ("search", 5), ("get", 3), ("get", 1), ("get", 1)
    ]  # fmt: skip
    assert versions[0] is not None and versions[1] is None and versions[2] is None
    assert found[0][0].image.e_tag == "0x1"
    assert [[n.image.image_id for n in hits] for hits in found] == [[f"hit{i}"] for i in range(5)]
    assert found[0][0].image.colour_signature == b"\x0a"
    assert [sorted(g) for g in got] == [["a"], ["a", "b"]]


async def test_milvus_down_is_transient_and_the_group_is_not_passed_on() -> None:
    index = index_on(FakeMilvus(down=True))
    with pytest.raises(TransientError):
        await index.upsert(stored("x"), np.zeros(2, np.float32))
    blobs = FakeBlobs()
    embedder = Embedder(blobs, fake_embed, index, CONFIG)
    with pytest.raises(TransientError):  # the runtime retries it with backoff, forever
        await embedder.handle(group("x", blobs.put("wc", "x.jpg", jpeg(photo(1)))))
    await index.aclose()


def test_index_parameters_per_type() -> None:
    assert index_config("IVF_FLAT", nlist=64, nprobe=128).search == {"nprobe": 64}
    assert index_config("HNSW", m=8, ef_construction=100, ef=50).build == {
        "M": 8,
        "efConstruction": 100,
    }
    assert index_config("FLAT").build == {}
    with pytest.raises(ValueError):
        index_config("DISKANN")


async def test_the_in_memory_index_answers_as_an_exact_cosine_search() -> None:
    index = MemoryEmbeddingIndex(2)
    for name, angle in (("a", 0.0), ("b", 0.5), ("c", 1.5)):
        vector = np.array([np.cos(angle), np.sin(angle)], np.float32) * 3  # not unit length
        await index.upsert(StoredImage(name, "b", "w", 0.5, b"\x0a", False, e_tag="1"), vector)
    await index.upsert(StoredImage("d", "b", "w", 0.5, b"", False), np.array([0, -1], np.float32))
    await index.delete("d")

    hits = await index.search(np.array([1, 0], np.float32), 2)

    assert [(n.image.image_id, round(n.similarity, 3)) for n in hits] == [
        ("a", 1.0),
        ("b", round(float(np.cos(0.5)), 3)),
    ]
    assert sorted(await index.vectors(["a", "d", "c"])) == ["a", "c"]
    assert await index.embedding_of("a", "1") is not None
    assert await index.embedding_of("a", "2") is None
    assert await index.embedding_of("d", "") is None
