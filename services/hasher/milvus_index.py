"""The hash index on Milvus: one record per readable image, searched by Hamming distance.

One collection holds both hashes as 256-bit BINARY_VECTOR fields (BIN_FLAT, HAMMING:
exact, which at 32 bytes a hash is ~100 MB per 3M images per field) and what later stages
need about a candidate (blob URL, quality, colour signature, working copy URL), so that a
search answers everything in one round trip.

Milvus Lite cannot return vector fields from a search, so each hash is also kept as hex
in a VARCHAR: the handler then computes both distances of every candidate exactly (a
candidate found by PDQ gets its wavelet distance too, and the reverse).

Apart from index.py because pymilvus (and pandas under it) is large: a process that
keeps its index in memory (`dedup scan`) never imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymilvus import AsyncMilvusClient, DataType

from dedup.batching import NaturalBatcher
from dedup.vectors import Flusher, FlushPolicy, store_rows, timed
from services.hasher.index import HASH_BITS, MAX_COLOUR_HEX, MAX_URL, IndexedImage, Radii

_SCALARS: tuple[tuple[str, DataType, dict[str, Any]], ...] = (
    ("blob_url", DataType.VARCHAR, {"max_length": MAX_URL}),
    ("e_tag", DataType.VARCHAR, {"max_length": 256}),
    ("pdq_hex", DataType.VARCHAR, {"max_length": HASH_BITS // 4}),
    ("wavelet_hex", DataType.VARCHAR, {"max_length": HASH_BITS // 4}),
    ("pdq_quality", DataType.INT32, {}),
    ("quality", DataType.FLOAT, {}),
    ("width", DataType.INT32, {}),
    ("height", DataType.INT32, {}),
    ("size_bytes", DataType.INT64, {}),
    ("colour_signature", DataType.VARCHAR, {"max_length": MAX_COLOUR_HEX}),
    ("greyscale", DataType.BOOL, {}),
    ("working_copy_url", DataType.VARCHAR, {"max_length": MAX_URL}),
)
OUTPUT_FIELDS = [name for name, _, _ in _SCALARS]


def to_row(image: IndexedImage) -> dict[str, Any]:
    return {
        "id": image.image_id,
        "pdq": image.pdq,
        "wavelet": image.wavelet,
        "blob_url": image.blob_url[:MAX_URL],
        "e_tag": image.e_tag[:256],
        "pdq_hex": image.pdq.hex(),
        "wavelet_hex": image.wavelet.hex(),
        "pdq_quality": image.pdq_quality,
        "quality": image.quality,
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size_bytes,
        "colour_signature": image.colour_signature.hex(),
        "greyscale": image.greyscale,
        "working_copy_url": image.working_copy_url[:MAX_URL],
    }


def from_hit(image_id: str, entity: dict[str, Any]) -> IndexedImage:
    return IndexedImage(
        image_id=image_id,
        blob_url=str(entity["blob_url"]),
        e_tag=str(entity["e_tag"]),
        pdq=bytes.fromhex(entity["pdq_hex"]),
        wavelet=bytes.fromhex(entity["wavelet_hex"]),
        pdq_quality=int(entity["pdq_quality"]),
        quality=float(entity["quality"]),
        width=int(entity["width"]),
        height=int(entity["height"]),
        size_bytes=int(entity["size_bytes"]),
        colour_signature=bytes.fromhex(entity["colour_signature"]),
        greyscale=bool(entity["greyscale"]),
        working_copy_url=str(entity["working_copy_url"]),
    )


@dataclass(frozen=True)
class HashIndexConfig:
    """The index of both hash fields. BIN_FLAT (the default) is exact: a range search
    finds every stored hash within the radius, which an inverted file (BIN_IVF_FLAT, a
    Milvus cluster only; Milvus Lite builds nothing but BIN_FLAT) does only for the lists
    it probes (bench/README.md, "The growth table")."""

    index_type: str = "BIN_FLAT"
    build: dict[str, int] = field(default_factory=dict)
    search: dict[str, int] = field(default_factory=dict)


def hash_index_config(index_type: str, *, nlist: int = 1024, nprobe: int = 64) -> HashIndexConfig:
    if index_type == "BIN_FLAT":
        return HashIndexConfig()
    if index_type == "BIN_IVF_FLAT":
        return HashIndexConfig(index_type, {"nlist": nlist}, {"nprobe": min(nprobe, nlist)})
    raise ValueError(f"unsupported hash index type {index_type!r}")


@dataclass(frozen=True, slots=True)
class Job:
    image: IndexedImage
    variants: tuple[bytes, ...]
    store: bool  # upsert the record before the search
    search: bool = True  # False: only stored


class MilvusHashIndex:
    """`HashIndex` on a Milvus collection (created at start-up if missing).

    Concurrent handlers share Milvus calls (see batching.py): one store of the batch's
    records (dedup.vectors.store_rows: a get of the ids, an insert of the new, an upsert
    of the stored), then one PDQ search with every variant of every image and one
    wavelet search. Unbatched, an image costs the local Milvus 4.9 ms of CPU at 10k
    stored, 10.6 at 100k, 41.8 at 1M (the exact scans grow; bench/milvus_growth.py).
    """

    def __init__(
        self,
        client: AsyncMilvusClient,
        collection: str,
        radii: Radii,
        service: str = "hasher",
        max_batch: int = 32,
        *,
        index: HashIndexConfig | None = None,
        flush: FlushPolicy | None = None,
    ) -> None:
        self._client = client
        self._collection = collection
        self._radii = radii
        self._service = service
        self._index = index or HashIndexConfig()
        self._batcher: NaturalBatcher[Job, list[IndexedImage]] = NaturalBatcher(
            self._run, max_batch
        )
        # Counts every row this index upserts (and, for a bulk load, what the loader says).
        self.flusher = Flusher(client, collection, flush or FlushPolicy(), service)

    async def ensure_collection(self) -> None:
        """Create the collection and its indexes (a no-op when it exists) and load it."""
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("pdq", DataType.BINARY_VECTOR, dim=HASH_BITS)
        schema.add_field("wavelet", DataType.BINARY_VECTOR, dim=HASH_BITS)
        for name, kind, params in _SCALARS:
            schema.add_field(name, kind, **params)
        index = self._client.prepare_index_params()
        for vector_field in ("pdq", "wavelet"):
            index.add_index(
                vector_field,
                index_type=self._index.index_type,
                metric_type="HAMMING",
                params=self._index.build,
            )
        await timed(
            self._service,
            "create_collection",
            self._client.create_collection(self._collection, schema=schema, index_params=index),
        )
        await timed(self._service, "load", self._client.load_collection(self._collection))

    async def add_and_search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        return await self._batcher.submit(Job(image, tuple(pdq_variants), store=True))

    async def search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        return await self._batcher.submit(Job(image, tuple(pdq_variants), store=False))

    async def add(self, image: IndexedImage) -> None:
        await self._batcher.submit(Job(image, (), store=True, search=False))

    async def delete(self, image_id: str) -> None:
        await timed(self._service, "delete", self._client.delete(self._collection, ids=[image_id]))

    async def aclose(self) -> None:
        await self.flusher.aclose()

    async def _run(self, jobs: list[Job]) -> list[list[IndexedImage]]:
        # The last record of an image wins (a redelivered event in the same batch).
        rows = {job.image.image_id: to_row(job.image) for job in jobs if job.store}
        if rows:
            written = await store_rows(
                self._client, self._collection, list(rows.values()), self._service, "e_tag"
            )
            self.flusher.added(written)
        searching = [job for job in jobs if job.search]
        if not searching:
            return [[] for _ in jobs]
        # Strong consistency: the records just upserted, by this or another replica, are
        # seen, so two near-duplicates arriving together still meet.
        by_pdq, by_wavelet = await asyncio.gather(
            self._search("pdq", [v for job in searching for v in job.variants], self._radii.pdq),
            self._search("wavelet", [job.image.wavelet for job in searching], self._radii.wavelet),
        )
        found_by_job: dict[int, list[IndexedImage]] = {}
        at = 0
        for i, job in enumerate(searching):
            found: dict[str, IndexedImage] = {}
            for hits in (*by_pdq[at : at + len(job.variants)], by_wavelet[i]):
                for hit in hits:
                    if hit["id"] not in found:
                        found[hit["id"]] = from_hit(hit["id"], hit["entity"])
            at += len(job.variants)
            found_by_job[id(job)] = list(found.values())
        return [found_by_job.get(id(job), []) for job in jobs]

    async def _search(
        self, field: str, vectors: list[bytes], radius: int
    ) -> list[list[dict[str, Any]]]:
        result = await timed(
            self._service,
            "search",
            self._client.search(
                self._collection,
                data=vectors,
                anns_field=field,
                # +1: the query image itself may take a place (the caller drops it).
                limit=self._radii.limit + 1,
                output_fields=OUTPUT_FIELDS,
                # A range search; Milvus's radius is exclusive for HAMMING.
                search_params={
                    "metric_type": "HAMMING",
                    "params": {"radius": radius + 1, **self._index.search},
                },
                consistency_level="Strong",
            ),
        )
        return [list(hits) for hits in result]
