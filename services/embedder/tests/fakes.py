"""In-memory stand-ins for the embedder's clients: they behave like the real ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dedup.blob import BlobMissingError, BlobTooLargeError
from services.embedder.index import Neighbour, StoredImage, Vector
from services.embedder.preprocess import RGB

ACCOUNT = "http://blobs/account"


@dataclass
class FakeBlobs:
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def put(self, container: str, name: str, data: bytes) -> str:
        self.blobs[container, name] = data
        return f"{ACCOUNT}/{container}/{name}"

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        if (container, name) not in self.blobs:
            raise BlobMissingError(f"{container}/{name} not found")
        data = self.blobs[container, name]
        if len(data) > max_bytes:
            raise BlobTooLargeError(f"{len(data)} bytes is over the {max_bytes} limit")
        return data

    def locate(self, url: str) -> tuple[str, str] | None:
        if not url.startswith(ACCOUNT + "/"):
            return None
        container, _, name = url.removeprefix(ACCOUNT + "/").partition("/")
        return container, name


async def fake_embed(image: RGB) -> Vector:
    """A tiny deterministic 'model': the mean-free grey pixels, unit length."""
    grey = image.astype(np.float32).mean(axis=2).ravel()
    grey -= grey.mean()
    return np.asarray(grey / max(float(np.linalg.norm(grey)), 1e-12), dtype=np.float32)


@dataclass
class FakeIndex:
    """Exact cosine search over a dict, like FLAT."""

    records: dict[str, tuple[StoredImage, Vector]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    async def upsert(self, image: StoredImage, vector: Vector) -> None:
        self.records[image.image_id] = (image, vector)

    async def search(self, vector: Vector, limit: int) -> list[Neighbour]:
        hits = [Neighbour(image, float(np.dot(vector, v))) for image, v in self.records.values()]
        return sorted(hits, key=lambda n: -n.similarity)[:limit]

    async def vectors(self, image_ids: Sequence[str]) -> dict[str, Vector]:
        return {i: self.records[i][1] for i in image_ids if i in self.records}

    async def embedding_of(self, image_id: str, e_tag: str) -> Vector | None:
        stored = self.records.get(image_id)
        return stored[1] if stored is not None and e_tag and stored[0].e_tag == e_tag else None

    async def delete(self, image_id: str) -> None:
        self.deleted.append(image_id)
        self.records.pop(image_id, None)
