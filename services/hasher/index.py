"""The hash index: one record per readable image, searched by Hamming distance.

`HashIndex` is what the handler needs; `MemoryHashIndex` keeps it in this process's
memory (`dedup scan`), `milvus_index.MilvusHashIndex` in Milvus (the service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dedup.rows import Rows

HASH_BITS = 256
HASH_WORDS = HASH_BITS // 64
MAX_URL = 4096
# A hex colour signature: libs/dedup/colour.py's SIGNATURE_BYTES (280) x 2, with room.
MAX_COLOUR_HEX = 1024


@dataclass(frozen=True, slots=True)
class IndexedImage:
    """What the index stores about one image (and returns about a candidate)."""

    image_id: str
    blob_url: str
    e_tag: str
    pdq: bytes
    wavelet: bytes
    pdq_quality: int
    quality: float
    width: int
    height: int
    size_bytes: int
    colour_signature: bytes
    greyscale: bool
    working_copy_url: str


@dataclass(frozen=True, slots=True)
class Radii:
    """How far the index looks: Hamming radii (bits) and the most hits per query vector."""

    pdq: int
    wavelet: int
    limit: int


class HashIndex(Protocol):
    async def add_and_search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        """Add or replace (same image id) the image's record, then return the stored
        images within the radii of any PDQ variant or of the wavelet hash (nearest first
        per query vector, at most `limit` each; may include the image itself and a few
        beyond the radii: the caller scores them exactly). Insert before search: two
        near-duplicates added at the same time find each other."""

    async def search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        """As `add_and_search`, for an image already stored: nothing is written."""

    async def add(self, image: IndexedImage) -> None:
        """Add or replace (same image id) the image's record; nothing is searched (a pass
        that stores every image first and searches afterwards: `dedup scan`)."""

    async def delete(self, image_id: str) -> None:
        """Remove the record, if any (idempotent)."""


def _hash_words(hashes: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    """256-bit hashes as rows of four 64-bit words (XOR and popcount per word)."""
    return np.frombuffer(b"".join(hashes), dtype=np.uint64).reshape(len(hashes), HASH_WORDS)


class MemoryHashIndex:
    """`HashIndex` in this process's memory, searched exactly (as BIN_FLAT does): for
    `dedup scan`, whose folder fits in memory; no server to start, nothing serialised.
    Hits per query vector as Milvus's range search gives them: within the radius,
    nearest first (ties by id), at most the radii's limit plus one (the image itself)."""

    def __init__(self, radii: Radii) -> None:
        self._radii = radii
        # pdq words, then wavelet words, per image.
        self._rows: Rows[IndexedImage] = Rows(2 * HASH_WORDS, np.uint64)

    async def add_and_search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        await self.add(image)
        return await self.search(image, pdq_variants)

    async def add(self, image: IndexedImage) -> None:
        self._rows.upsert(image.image_id, _hash_words([image.pdq, image.wavelet]).ravel(), image)

    async def search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        stored = self._rows.matrix
        pdq, wavelet = stored[:, :HASH_WORDS], stored[:, HASH_WORDS:]
        queries = [(pdq, v, self._radii.pdq) for v in pdq_variants]
        found: dict[str, IndexedImage] = {}
        for words, query, radius in (*queries, (wavelet, image.wavelet, self._radii.wavelet)):
            distances = np.bitwise_count(words ^ _hash_words([query])).sum(axis=1)
            for row in self._nearest(distances, radius):
                found.setdefault(self._rows.id_at(row), self._rows.payload_at(row))
        return list(found.values())

    async def delete(self, image_id: str) -> None:
        self._rows.delete(image_id)

    def _nearest(self, distances: npt.NDArray[np.int64], radius: int) -> list[int]:
        rows = np.flatnonzero(distances <= radius)
        ranked = sorted(rows.tolist(), key=lambda r: (int(distances[r]), self._rows.id_at(r)))
        return ranked[: self._radii.limit + 1]
