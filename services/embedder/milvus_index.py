"""The embedding index on Milvus: one record per readable image, searched by cosine.

A record holds the embedding (FLOAT_VECTOR) and what a later stage needs about an image
that the embedder adds as a candidate (blob URL, working copy URL, quality, colour
signature), so one search answers everything. Keyed by image id: an upsert replaces,
which makes redelivery harmless.

Concurrent handlers' calls are merged by micro-batchers: one upsert of many rows, one
search with many query vectors, one get of many ids. Searches run with Strong
consistency, so they see every upsert acknowledged before them (this replica's or
another's): two near-duplicates processed at the same moment still meet.

Apart from index.py because pymilvus (and pandas under it) is large: a process that
keeps its index in memory (`dedup scan`) never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus import AsyncMilvusClient, DataType

from dedup.batching import MicroBatcher
from dedup.vectors import Flusher, FlushPolicy, store_rows, timed
from services.embedder.index import (
    MAX_COLOUR_HEX,
    MAX_URL,
    IndexConfig,
    Neighbour,
    StoredImage,
    Vector,
)

METRIC = "COSINE"

_SCALARS: tuple[tuple[str, DataType, dict[str, Any]], ...] = (
    ("blob_url", DataType.VARCHAR, {"max_length": MAX_URL}),
    ("working_copy_url", DataType.VARCHAR, {"max_length": MAX_URL}),
    ("quality", DataType.FLOAT, {}),
    ("colour_signature", DataType.VARCHAR, {"max_length": MAX_COLOUR_HEX}),
    ("greyscale", DataType.BOOL, {}),
    ("e_tag", DataType.VARCHAR, {"max_length": 256}),
)
OUTPUT_FIELDS = [name for name, _, _ in _SCALARS]


def to_row(image: StoredImage, vector: Vector) -> dict[str, Any]:
    return {
        "id": image.image_id,
        "embedding": np.asarray(vector, dtype=np.float32).tolist(),
        "blob_url": image.blob_url[:MAX_URL],
        "working_copy_url": image.working_copy_url[:MAX_URL],
        "quality": float(image.quality),
        "colour_signature": image.colour_signature.hex()[:MAX_COLOUR_HEX],
        "greyscale": bool(image.greyscale),
        "e_tag": image.e_tag[:256],
    }


def from_hit(hit: dict[str, Any]) -> Neighbour:
    entity = hit["entity"]
    image = StoredImage(
        image_id=str(hit["id"]),
        blob_url=str(entity["blob_url"]),
        working_copy_url=str(entity["working_copy_url"]),
        quality=float(entity["quality"]),
        colour_signature=bytes.fromhex(entity["colour_signature"]),
        greyscale=bool(entity["greyscale"]),
        e_tag=str(entity["e_tag"]),
    )
    return Neighbour(image, float(hit["distance"]))  # COSINE: the "distance" is the similarity


def once_per_id(neighbours: list[Neighbour]) -> list[Neighbour]:
    """The first (most similar) neighbour of each image id: an id inserted twice at once
    by two replicas has two records until its next upsert (dedup.vectors.store_rows)."""
    seen: set[str] = set()
    kept = []
    for neighbour in neighbours:
        if neighbour.image.image_id not in seen:
            seen.add(neighbour.image.image_id)
            kept.append(neighbour)
    return kept


class MilvusEmbeddingIndex:
    """`EmbeddingIndex` on a Milvus collection (created at start-up if missing)."""

    def __init__(
        self,
        client: AsyncMilvusClient,
        collection: str,
        dim: int,
        config: IndexConfig,
        *,
        service: str = "embedder",
        batch_size: int = 64,
        batch_delay_seconds: float = 0.005,
        flush: FlushPolicy | None = None,
    ) -> None:
        self._client = client
        self._collection = collection
        self._dim = dim
        self._config = config
        self._service = service
        # Counts every row this index upserts (and, for a bulk load, what the loader says).
        self.flusher = Flusher(client, collection, flush or FlushPolicy(), service)
        size, delay = batch_size, batch_delay_seconds
        self._upserts: MicroBatcher[dict[str, Any], None] = MicroBatcher(
            self._upsert_rows, max_size=size, max_delay_seconds=delay
        )
        self._searches: MicroBatcher[tuple[Vector, int], list[Neighbour]] = MicroBatcher(
            self._search_many, max_size=size, max_delay_seconds=delay
        )
        self._gets: MicroBatcher[tuple[str, ...], dict[str, Vector]] = MicroBatcher(
            self._get_many, max_size=size, max_delay_seconds=delay
        )
        self._versions: MicroBatcher[str, str | None] = MicroBatcher(
            self._versions_of, max_size=size, max_delay_seconds=delay
        )

    async def ensure_collection(self) -> None:
        """Create the collection and its index (a no-op when it exists) and load it.

        A collection that exists with another dimension (another model) is an error here,
        at start-up, rather than on every message.
        """
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self._dim)
        for name, kind, params in _SCALARS:
            schema.add_field(name, kind, **params)
        index = self._client.prepare_index_params()
        index.add_index(
            "embedding",
            index_type=self._config.index_type,
            metric_type=METRIC,
            params=self._config.build,
        )
        await timed(
            self._service,
            "create_collection",
            self._client.create_collection(self._collection, schema=schema, index_params=index),
        )
        await timed(self._service, "load", self._client.load_collection(self._collection))

    async def upsert(self, image: StoredImage, vector: Vector) -> None:
        await self._upserts.submit(to_row(image, vector))

    async def search(self, vector: Vector, limit: int) -> list[Neighbour]:
        return await self._searches.submit((vector, limit))

    async def vectors(self, image_ids: Sequence[str]) -> dict[str, Vector]:
        if not image_ids:
            return {}
        return await self._gets.submit(tuple(image_ids))

    async def embedding_of(self, image_id: str, e_tag: str) -> Vector | None:
        # The version first: usually it is new, and then no vector needs to travel.
        if not e_tag or await self._versions.submit(image_id) != e_tag:
            return None
        return (await self.vectors([image_id])).get(image_id)

    async def delete(self, image_id: str) -> None:
        await timed(self._service, "delete", self._client.delete(self._collection, ids=[image_id]))

    async def aclose(self) -> None:
        for batcher in (self._upserts, self._searches, self._gets, self._versions):
            await batcher.aclose()
        await self.flusher.aclose()

    async def _upsert_rows(self, rows: list[dict[str, Any]]) -> list[None]:
        # One row per image id in a call: a redelivered message may ask twice at once.
        unique = {row["id"]: row for row in rows}
        written = await store_rows(
            self._client, self._collection, list(unique.values()), self._service, "e_tag"
        )
        self.flusher.added(written)
        return [None] * len(rows)

    async def _search_many(self, queries: list[tuple[Vector, int]]) -> list[list[Neighbour]]:
        limit = max(limit for _, limit in queries)
        result = await timed(
            self._service,
            "search",
            self._client.search(
                self._collection,
                data=[np.asarray(v, dtype=np.float32).tolist() for v, _ in queries],
                anns_field="embedding",
                limit=limit,
                output_fields=OUTPUT_FIELDS,
                search_params={"metric_type": METRIC, "params": self._config.search},
                consistency_level="Strong",
            ),
        )
        return [
            once_per_id([from_hit(hit) for hit in hits])[:own_limit]
            for hits, (_, own_limit) in zip(result, queries, strict=True)
        ]

    async def _get_many(self, requests: list[tuple[str, ...]]) -> list[dict[str, Vector]]:
        wanted = sorted({image_id for ids in requests for image_id in ids})
        rows = await timed(
            self._service,
            "get",
            self._client.get(
                self._collection,
                ids=wanted,
                output_fields=["embedding"],
                consistency_level="Strong",
            ),
        )
        found = {str(row["id"]): np.asarray(row["embedding"], dtype=np.float32) for row in rows}
        return [{i: found[i] for i in ids if i in found} for ids in requests]

    async def _versions_of(self, image_ids: list[str]) -> list[str | None]:
        # Only scalar fields: Milvus Lite fails a get of a vector field on an empty collection.
        rows = await timed(
            self._service,
            "get",
            self._client.get(
                self._collection,
                ids=sorted(set(image_ids)),
                output_fields=["e_tag"],
                consistency_level="Strong",
            ),
        )
        e_tags = {str(row["id"]): str(row["e_tag"]) for row in rows}
        return [e_tags.get(image_id) for image_id in image_ids]
