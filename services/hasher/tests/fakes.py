"""In-memory stand-ins for the hasher's clients: they behave like the real ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dedup.blob import BlobMissingError, BlobTooLargeError
from services.hasher.hashes import hamming
from services.hasher.index import IndexedImage, Radii


@dataclass
class FakeBlobs:
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    downloads: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        if self.fail_with is not None:
            raise self.fail_with
        self.downloads.append((container, name))
        if (container, name) not in self.blobs:
            raise BlobMissingError(f"{container}/{name} not found")
        data = self.blobs[container, name]
        if len(data) > max_bytes:
            raise BlobTooLargeError(f"{len(data)} bytes is over the {max_bytes} limit")
        return data

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        self.blobs[container, name] = data
        return f"http://blobs/{container}/{name}"

    async def delete(self, container: str, name: str) -> None:
        self.blobs.pop((container, name), None)


@dataclass
class FakeIndex:
    """Exact Hamming search over a dict, like BIN_FLAT (all radii 256 unless given)."""

    radii: Radii = field(default_factory=lambda: Radii(256, 256, 1024))
    records: dict[str, IndexedImage] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    async def add_and_search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        await self.add(image)
        return await self.search(image, pdq_variants)

    async def add(self, image: IndexedImage) -> None:
        self.records[image.image_id] = image

    async def search(
        self, image: IndexedImage, pdq_variants: Sequence[bytes]
    ) -> list[IndexedImage]:
        return [
            r
            for r in self.records.values()
            if min(hamming(v, r.pdq) for v in pdq_variants) <= self.radii.pdq
            or hamming(image.wavelet, r.wavelet) <= self.radii.wavelet
        ]

    async def delete(self, image_id: str) -> None:
        self.deleted.append(image_id)
        self.records.pop(image_id, None)
