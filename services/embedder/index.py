"""The embedding index: one record per readable image, searched by cosine similarity.

`EmbeddingIndex` is what the handler needs; `MemoryEmbeddingIndex` keeps it in this
process's memory (`dedup scan`), `milvus_index.MilvusEmbeddingIndex` in Milvus (the
service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dedup.rows import Rows

Vector = npt.NDArray[np.float32]
MAX_URL = 4096
# A hex colour signature (libs/dedup/colour.py: 280 bytes), with room.
MAX_COLOUR_HEX = 1024


@dataclass(frozen=True, slots=True)
class StoredImage:
    """What the index keeps about an image besides its embedding."""

    image_id: str
    blob_url: str
    working_copy_url: str
    quality: float
    colour_signature: bytes
    greyscale: bool
    e_tag: str = ""  # the version of the blob that was embedded


@dataclass(frozen=True, slots=True)
class Neighbour:
    image: StoredImage
    similarity: float  # cosine, -1..1


class EmbeddingIndex(Protocol):
    async def upsert(self, image: StoredImage, vector: Vector) -> None:
        """Add or replace (same image id) one record; visible to the next search."""

    async def search(self, vector: Vector, limit: int) -> list[Neighbour]:
        """The `limit` nearest records, most similar first (may include the query image)."""

    async def vectors(self, image_ids: Sequence[str]) -> dict[str, Vector]:
        """The stored embeddings of those of `image_ids` that are in the index."""

    async def embedding_of(self, image_id: str, e_tag: str) -> Vector | None:
        """The stored embedding of this version (e_tag) of the image, if it is stored."""

    async def delete(self, image_id: str) -> None:
        """Remove the record, if any (idempotent)."""


@dataclass(frozen=True)
class IndexConfig:
    """How the vectors are indexed: the index type and its build and search parameters."""

    index_type: str
    build: dict[str, int]
    search: dict[str, int]


def index_config(
    index_type: str,
    *,
    nlist: int = 1024,
    nprobe: int = 32,
    m: int = 16,
    ef_construction: int = 200,
    ef: int = 512,
) -> IndexConfig:
    if index_type == "IVF_FLAT":
        return IndexConfig(index_type, {"nlist": nlist}, {"nprobe": min(nprobe, nlist)})
    if index_type == "HNSW":
        return IndexConfig(index_type, {"M": m, "efConstruction": ef_construction}, {"ef": ef})
    if index_type in ("FLAT", "AUTOINDEX"):
        return IndexConfig(index_type, {}, {})
    raise ValueError(f"unsupported index type {index_type!r}")


def unit(vector: Vector) -> Vector:
    """`vector` at length 1 (cosine similarity is then the dot product, as Milvus's COSINE)."""
    v = np.asarray(vector, dtype=np.float32)
    return np.asarray(v / max(float(np.linalg.norm(v)), 1e-12), dtype=np.float32)


class MemoryEmbeddingIndex:
    """`EmbeddingIndex` in this process's memory, searched exactly (as FLAT does): for
    `dedup scan`, whose folder fits in memory; no server to start, nothing serialised."""

    def __init__(self, dim: int) -> None:
        self._rows: Rows[StoredImage] = Rows(dim, np.float32)

    async def upsert(self, image: StoredImage, vector: Vector) -> None:
        self._rows.upsert(image.image_id, unit(vector), image)

    async def search(self, vector: Vector, limit: int) -> list[Neighbour]:
        similarity = self._rows.matrix @ unit(vector)
        nearest = np.argsort(-similarity, kind="stable")[:limit]
        return [Neighbour(self._rows.payload_at(r), float(similarity[r])) for r in nearest]

    async def vectors(self, image_ids: Sequence[str]) -> dict[str, Vector]:
        found = {i: self._rows.get(i) for i in image_ids}
        return {i: np.asarray(row[0], np.float32) for i, row in found.items() if row is not None}

    async def embedding_of(self, image_id: str, e_tag: str) -> Vector | None:
        row = self._rows.get(image_id)
        if row is None or not e_tag or row[1].e_tag != e_tag:
            return None
        return np.asarray(row[0], np.float32)

    async def delete(self, image_id: str) -> None:
        self._rows.delete(image_id)
