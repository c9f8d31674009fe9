"""The hasher's logic: one BlobEvent in, one CandidateGroup out, for every image.

BlobCreated (or a listing event): download the blob once, compute its features in a
worker thread, store the working copy, index the hashes, then search the index (insert
before search: two near-duplicates that arrive together still find each other) and
publish the image with its candidates. An image that cannot be read still yields a
group, with its status and reason, and leaves the index (an overwrite may have turned a
good image into a broken one). BlobDeleted: the image leaves the index and the derived
container, and a DELETED group tells the ranker to re-decide.

Pure: the blob store, the index and the feature extractor are injected; no Kafka,
environment or metrics here. Everything is keyed by image id, so redelivery repeats
the same idempotent writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Protocol

from dedup.blob import BlobMissingError, BlobTooLargeError, unaddressable
from dedup.errors import InvalidMessageError
from dedup.events import BLOB_CREATED, BLOB_DELETED
from dedup.imaging import INVERSE
from dedup.runtime.contract import Output
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus, QualityParts
from dedup.v1.groups_pb2 import (
    Candidate,
    CandidateGroup,
    CandidateSource,
    Scores,
    Verdict,
)
from services.hasher.decode import DecodeError, DecodeErrorKind
from services.hasher.features import Features
from services.hasher.hashes import PdqHash, best_dihedral, hamming
from services.hasher.index import HashIndex, IndexedImage

STAGE: Final = "hasher"

STATUS_OF_DECODE_ERROR: Final[dict[DecodeErrorKind, ImageStatus.ValueType]] = {
    "corrupt": ImageStatus.IMAGE_STATUS_CORRUPT,
    "unsupported": ImageStatus.IMAGE_STATUS_UNSUPPORTED,
    "too_large": ImageStatus.IMAGE_STATUS_TOO_LARGE,
    "bomb": ImageStatus.IMAGE_STATUS_BOMB,
    "empty": ImageStatus.IMAGE_STATUS_EMPTY,
}


class Blobs(Protocol):
    """The blob operations the hasher needs (dedup.blob.BlobStore has them)."""

    async def download(self, container: str, name: str, max_bytes: int) -> bytes: ...

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = ...
    ) -> str: ...

    async def delete(self, container: str, name: str) -> None: ...


@dataclass(frozen=True)
class HasherConfig:
    working_container: str
    max_download_bytes: int
    pdq_radius: int
    wavelet_radius: int
    max_candidates: int


class ImageFailed(Exception):
    """The image cannot be processed; it flows on with this status and reason."""

    def __init__(self, status: ImageStatus.ValueType, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def working_copy_name(image_id: str) -> str:
    return f"{image_id}.jpg"


def transform_of_candidate(query_variant: int) -> int:
    """`Scores.pdq_transform` from the PDQ variant of the NEW image that matched.

    Variant i is the new image turned by DIHEDRAL[i]; it matching the candidate means
    candidate ~ turn_i(new), so new ~ turn_i^-1(candidate): the candidate turned by the
    inverse of i looks like the new image (which is what colour_distance(new, candidate,
    transform) and the matcher expect).
    """
    return INVERSE[query_variant]


@dataclass(frozen=True)
class Hashes:
    """What the hash index is searched with: PDQ (with its turned variants) and wavelet."""

    pdq: PdqHash
    wavelet: bytes

    @classmethod
    def of_image(cls, image: ImageFeatures) -> Hashes:
        """From a hashed image's stored features: no pixels needed."""
        variants = tuple(image.pdq_dihedral) or (image.pdq_hash,)
        return cls(PdqHash(image.pdq_hash, image.pdq_quality, variants), image.wavelet_hash)


def score(
    hashes: Hashes, stored: IndexedImage, config: HasherConfig
) -> tuple[int, int, int] | None:
    """(pdq distance, wavelet distance, pdq_transform), or None if outside both radii."""
    variant, pdq_distance = best_dihedral(hashes.pdq, stored.pdq)
    wavelet_distance = hamming(hashes.wavelet, stored.wavelet)
    if pdq_distance > config.pdq_radius and wavelet_distance > config.wavelet_radius:
        return None
    return pdq_distance, wavelet_distance, transform_of_candidate(variant)


def candidates(
    image_id: str, hashes: Hashes, stored: Sequence[IndexedImage], config: HasherConfig
) -> list[Candidate]:
    """The stored images within a radius, nearest first (ties by id: deterministic)."""
    scored = []
    for s in stored:
        if s.image_id == image_id:
            continue
        distances = score(hashes, s, config)
        if distances is not None:
            scored.append((min(distances[0], distances[1]), s.image_id, s, distances))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [
        Candidate(
            image_id=s.image_id,
            blob_url=s.blob_url,
            source=CandidateSource.CANDIDATE_SOURCE_HASH,
            verdict=Verdict.VERDICT_PENDING,
            scores=Scores(pdq_distance=pdq, wavelet_distance=wavelet, pdq_transform=transform),
            quality=s.quality,
            colour_signature=s.colour_signature,
            greyscale=s.greyscale,
            working_copy_url=s.working_copy_url,
            e_tag=s.e_tag,
        )
        for _, _, s, (pdq, wavelet, transform) in scored[: config.max_candidates]
    ]


def base_features(event: BlobEvent) -> ImageFeatures:
    """What the event alone tells about the image."""
    return ImageFeatures(
        image_id=event.image_id,
        blob_url=event.data.url,
        e_tag=event.data.e_tag,
        content_type=event.data.content_type,
        size_bytes=event.data.content_length,
    )


def fill_features(
    image: ImageFeatures, features: Features, size_bytes: int, working_copy_url: str
) -> None:
    d, q = features.decoded, features.quality
    image.status = ImageStatus.IMAGE_STATUS_OK
    image.size_bytes = size_bytes
    image.width, image.height, image.format = d.width, d.height, d.format
    image.wavelet_hash = features.wavelet_hash
    image.pdq_hash = features.pdq.hash
    image.pdq_quality = features.pdq.quality
    image.pdq_dihedral.extend(features.pdq.dihedral)
    image.colour_signature = features.colour.to_bytes()
    image.greyscale = features.colour.is_greyscale
    image.quality = q.score
    image.quality_parts.CopyFrom(
        QualityParts(
            resolution=q.resolution,
            sharpness=q.sharpness,
            noise=q.noise,
            jpeg_quality=q.jpeg_quality,
            exposure=q.exposure,
        )
    )
    image.marks.palette = features.palette
    image.marks.framed = features.framed
    image.marks.coloured_patch = features.coloured_patch
    image.marks.pixels = features.pixels
    image.marks.widened = features.decoded.widened
    image.marks.native_noise = features.native_noise
    if features.blockiness is not None:
        image.marks.blockiness = features.blockiness.ratio
        image.marks.block_energy = features.blockiness.energy
    image.working_copy_url = working_copy_url


def indexed(image: ImageFeatures) -> IndexedImage:
    return IndexedImage(
        image_id=image.image_id,
        blob_url=image.blob_url,
        e_tag=image.e_tag,
        pdq=image.pdq_hash,
        wavelet=image.wavelet_hash,
        pdq_quality=image.pdq_quality,
        quality=image.quality,
        width=image.width,
        height=image.height,
        size_bytes=image.size_bytes,
        colour_signature=image.colour_signature,
        greyscale=image.greyscale,
        working_copy_url=image.working_copy_url,
    )


class Hasher:
    def __init__(
        self,
        blobs: Blobs,
        index: HashIndex,
        extract: Callable[[bytes], Features],
        config: HasherConfig,
        executor: Executor | None = None,
    ) -> None:
        self._blobs = blobs
        self._index = index
        self._extract = extract
        self._config = config
        self._executor = executor  # None: the event loop's default executor

    async def handle(self, event: BlobEvent, *, search: bool = True) -> Sequence[Output]:
        """`search` False: a created image is stored, not searched; its group comes
        without candidates (`dedup scan`'s index pass: `research` searches afterwards)."""
        if not event.container or not event.blob_name:
            raise InvalidMessageError("a blob event needs a container and a blob name")
        if event.container == self._config.working_container:
            # Our own working copies: an event subscription that covers the derived
            # container would otherwise hash copies of copies without end.
            return []
        if event.event_type == BLOB_DELETED:
            group = await self.deleted(event)
        elif event.event_type == BLOB_CREATED:
            group = await self.created(event, search=search)
        else:
            raise InvalidMessageError(f"unexpected event type {event.event_type!r}")
        return [Output(event.image_id, group)]

    async def created(self, event: BlobEvent, *, search: bool = True) -> CandidateGroup:
        image = base_features(event)
        group = CandidateGroup(image_id=event.image_id, event=event, stages=[STAGE])
        try:
            data = await self._download(event)
            features = await self._features(data)
        except ImageFailed as failure:
            image.status, image.reason = failure.status, failure.reason
            await self._forget(event.image_id)  # an overwrite may have broken a good image
            group.image.CopyFrom(image)
            return group
        url = await self._blobs.upload(
            self._config.working_container,
            working_copy_name(event.image_id),
            features.working_copy,
            "image/jpeg",
        )
        fill_features(image, features, len(data), url)
        group.image.CopyFrom(image)
        if not search:
            await self._index.add(indexed(image))
            return group
        near = await self._index.add_and_search(indexed(image), features.pdq.dihedral)
        hashes = Hashes(features.pdq, features.wavelet_hash)
        group.candidates.extend(candidates(event.image_id, hashes, near, self._config))
        return group

    async def restore(self, image: ImageFeatures) -> None:
        """Index an image hashed before, from its stored features (no download, no
        decoding; its working copy must be where `image.working_copy_url` says): how
        `dedup scan` resumes a scan from its state on disk."""
        if image.status == ImageStatus.IMAGE_STATUS_OK:
            await self._index.add(indexed(image))

    async def research(self, group: CandidateGroup) -> CandidateGroup:
        """The group of an image hashed and stored before, its candidates searched afresh
        in the index as it is now, from the stored hashes (no download, no decoding): how
        `dedup scan` judges every image against the whole folder once it is indexed."""
        out = CandidateGroup()
        out.CopyFrom(group)
        if group.image.status != ImageStatus.IMAGE_STATUS_OK:
            return out
        hashes = Hashes.of_image(group.image)
        near = await self._index.search(indexed(group.image), hashes.pdq.dihedral)
        del out.candidates[:]
        out.candidates.extend(candidates(group.image_id, hashes, near, self._config))
        return out

    async def deleted(self, event: BlobEvent) -> CandidateGroup:
        await self._forget(event.image_id)
        image = base_features(event)
        image.status = ImageStatus.IMAGE_STATUS_DELETED
        image.reason = "the blob was deleted"
        return CandidateGroup(image_id=event.image_id, image=image, event=event, stages=[STAGE])

    async def _download(self, event: BlobEvent) -> bytes:
        if why := unaddressable(event.blob_name):  # an event no listing could have made
            raise ImageFailed(ImageStatus.IMAGE_STATUS_MISSING, why)
        limit = self._config.max_download_bytes
        if event.data.content_length > limit:
            raise ImageFailed(
                ImageStatus.IMAGE_STATUS_TOO_LARGE,
                f"{event.data.content_length} bytes is over the download limit of {limit}",
            )
        try:
            return await self._blobs.download(event.container, event.blob_name, limit)
        except BlobMissingError as error:
            raise ImageFailed(ImageStatus.IMAGE_STATUS_MISSING, str(error)) from error
        except BlobTooLargeError as error:
            raise ImageFailed(ImageStatus.IMAGE_STATUS_TOO_LARGE, str(error)) from error

    async def _features(self, data: bytes) -> Features:
        try:
            # CPU-bound (decode, hashes, encode), mostly outside the GIL: a worker thread
            # (at most as many at once as the executor has threads; the runtime's
            # concurrency keeps the next downloads and Milvus calls going meanwhile).
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._extract, data)
        except DecodeError as error:
            raise ImageFailed(STATUS_OF_DECODE_ERROR[error.kind], str(error)) from error

    async def _forget(self, image_id: str) -> None:
        await self._index.delete(image_id)
        await self._blobs.delete(self._config.working_container, working_copy_name(image_id))
