"""The embedder's logic: one CandidateGroup in, the same group refined, out.

For a readable image: read its working copy, embed it (Triton), upsert the embedding
(Milvus), then search its nearest neighbours (insert before search: two near-duplicates
that arrive together still find each other). Then
- every candidate whose embedding is stored gets `embedding_similarity` (a candidate the
  hashes matched turned or flipped is compared with the new image turned the same way);
- a hash candidate below the drop threshold is rejected, with the reason (kept in the
  group: the ranker and the report see the evidence), unless its PDQ distance is within
  PDQ's own match threshold (``keep_pdq``, 31): then it stays open for the matcher, which
  proves or rejects it geometrically (salt-and-pepper noise or a heavy filter can move an
  embedding far while the PDQ hash holds);
- a neighbour at or above the add threshold that no earlier stage found (a crop, an
  overlay, a border) joins as an EMBEDDING candidate for the matcher to prove or not.

A group whose image is not readable passes through untouched; a deleted image leaves the
index. Pure: blob store, embedding function and index are injected; no Kafka, environment
or metrics here. Keyed by image id (upsert), so redelivery repeats the same writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from dedup.blob import BlobMissingError, BlobTooLargeError
from dedup.imaging import INVERSE
from dedup.runtime.contract import Output
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, CandidateSource, Scores, Verdict
from services.embedder.index import EmbeddingIndex, Neighbour, StoredImage, Vector
from services.embedder.preprocess import RGB, UnreadableWorkingCopyError, decode_rgb, model_input

STAGE: Final = "embedder"
# Candidate.test of a hash candidate rejected on its embedding similarity, without pixels.
DROP_TEST: Final = "embedding-far"
OPEN_VERDICTS: Final = (Verdict.VERDICT_UNSPECIFIED, Verdict.VERDICT_PENDING)

log = logging.getLogger("dedup.embedder")

Embed = Callable[[RGB], Awaitable[Vector]]


class Blobs(Protocol):
    """The blob operations the embedder needs (dedup.blob.BlobStore has them)."""

    async def download(self, container: str, name: str, max_bytes: int) -> bytes: ...

    def locate(self, url: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Thresholds:
    add: float  # a neighbour at or above this that no stage found becomes a candidate
    drop: float  # a hash candidate below this is rejected
    # ...unless its PDQ distance (at the turn the hashes matched) is at most this: PDQ's
    # published match threshold (31 of 256 bits). Hash evidence that strong stands on its
    # own (an impulse-noised or heavily filtered copy embeds far from its original); the
    # matcher proves it or rejects it geometrically. -1: never kept.
    keep_pdq: int = 31


@dataclass(frozen=True)
class EmbedderConfig:
    side: int  # the model's input: side x side RGB
    neighbours: int
    thresholds: Thresholds
    max_download_bytes: int


# ---- pure decisions ----------------------------------------------------------------------


def model_turn(candidate: Candidate) -> int:
    """How to turn the NEW image to compare it with this candidate's stored embedding.

    `pdq_transform` T says the candidate turned by T looks like the new image, so the new
    image turned by T's inverse looks like the candidate (index into dedup.imaging.DIHEDRAL).
    """
    if candidate.scores.HasField("pdq_transform"):
        return INVERSE[candidate.scores.pdq_transform]
    return 0


def similarities(
    candidates: Iterable[Candidate], stored: Mapping[str, Vector], queries: Mapping[int, Vector]
) -> dict[str, float]:
    """Cosine similarity of each candidate whose embedding is stored with the new image
    turned as that candidate needs (`queries`: turn -> embedding; all unit vectors)."""
    result = {}
    for c in candidates:
        vector = stored.get(c.image_id)
        query = queries.get(model_turn(c))
        if vector is not None and query is not None:
            result[c.image_id] = float(np.clip(np.dot(query, vector), -1.0, 1.0))
    return result


def strong_hash_match(candidate: Candidate, keep_pdq: int) -> bool:
    """A hash candidate whose PDQ distance alone is a match (PDQ's own threshold)."""
    scores = candidate.scores
    return scores.HasField("pdq_distance") and scores.pdq_distance <= keep_pdq


def judged(
    candidate: Candidate, similarity: float | None, drop: float, keep_pdq: int = -1
) -> Candidate:
    """The candidate with its embedding similarity; rejected if a hash match this far apart
    (unless its PDQ distance is at most ``keep_pdq``: then it stays open for the matcher)."""
    out = Candidate()
    out.CopyFrom(candidate)
    if similarity is None:
        return out
    out.scores.embedding_similarity = similarity
    if (
        out.source == CandidateSource.CANDIDATE_SOURCE_HASH
        and out.verdict in OPEN_VERDICTS
        and similarity < drop
        and not strong_hash_match(out, keep_pdq)
    ):
        out.verdict = Verdict.VERDICT_REJECTED
        out.decided_by = STAGE
        out.test = DROP_TEST
        out.reason = f"embedding similarity {similarity:.3f} < drop threshold {drop:.3f}"
    return out


def from_neighbour(neighbour: Neighbour) -> Candidate:
    image = neighbour.image
    return Candidate(
        image_id=image.image_id,
        blob_url=image.blob_url,
        source=CandidateSource.CANDIDATE_SOURCE_EMBEDDING,
        verdict=Verdict.VERDICT_PENDING,
        scores=Scores(embedding_similarity=neighbour.similarity),
        quality=image.quality,
        colour_signature=image.colour_signature,
        greyscale=image.greyscale,
        working_copy_url=image.working_copy_url,
        e_tag=image.e_tag,
    )


def merge(
    image_id: str,
    candidates: Sequence[Candidate],
    similarity: Mapping[str, float],
    neighbours: Sequence[Neighbour],
    thresholds: Thresholds,
    limit: int,
) -> list[Candidate]:
    """The group's candidates judged, then up to `limit` new ones from the neighbours
    (most similar first, ties by id: deterministic)."""
    out = [
        judged(c, similarity.get(c.image_id), thresholds.drop, thresholds.keep_pdq)
        for c in candidates
    ]
    known = {image_id, *(c.image_id for c in candidates)}
    ranked = sorted(neighbours, key=lambda n: (-n.similarity, n.image.image_id))
    for n in ranked:
        if len(out) - len(candidates) >= limit:
            break
        if n.image.image_id not in known and n.similarity >= thresholds.add:
            out.append(from_neighbour(n))
            known.add(n.image.image_id)
    return out


def stored_image(image: ImageFeatures) -> StoredImage:
    return StoredImage(
        image_id=image.image_id,
        blob_url=image.blob_url,
        working_copy_url=image.working_copy_url,
        quality=image.quality,
        colour_signature=image.colour_signature,
        greyscale=image.greyscale,
        e_tag=image.e_tag,
    )


# ---- the handler ---------------------------------------------------------------------------


class Embedder:
    def __init__(
        self, blobs: Blobs, embed: Embed, index: EmbeddingIndex, config: EmbedderConfig
    ) -> None:
        self._blobs = blobs
        self._embed = embed
        self._index = index
        self._config = config

    async def handle(self, group: CandidateGroup, *, search: bool = True) -> Sequence[Output]:
        """`search` False: the image's embedding is only stored, its candidates are left
        as they came (`dedup scan`'s index pass, which judges every image afterwards)."""
        out = CandidateGroup()
        out.CopyFrom(group)
        out.stages.append(STAGE)
        status = group.image.status
        if status == ImageStatus.IMAGE_STATUS_DELETED:
            await self._index.delete(group.image_id)
        elif status == ImageStatus.IMAGE_STATUS_OK:
            await (self._refine(out) if search else self._store(out))
        return [Output(group.image_id, out)]

    async def stored(self, image: ImageFeatures) -> Vector | None:
        """The embedding stored for this version of the image, if any."""
        return await self._index.embedding_of(image.image_id, image.e_tag)

    async def restore(self, image: ImageFeatures, vector: Vector) -> None:
        """Store an embedding made before (`dedup scan` resuming from its state on disk)."""
        await self._index.upsert(stored_image(image), vector)

    async def _store(self, group: CandidateGroup) -> None:
        """The embedding of this version stored (once)."""
        if await self._index.embedding_of(group.image_id, group.image.e_tag) is not None:
            return
        embedded = await self._embedded(group, {0})
        if embedded is not None:
            await self._index.upsert(stored_image(group.image), embedded[0])

    async def _refine(self, group: CandidateGroup) -> None:
        c = self._config
        # This version of the image embedded before (a redelivery, or `dedup scan`'s
        # judging pass): its stored embedding is reused; only turned queries need pixels.
        known = await self._index.embedding_of(group.image_id, group.image.e_tag)
        queries = {} if known is None else {0: known}
        turns = {0, *(model_turn(x) for x in group.candidates)} - queries.keys()
        if turns:
            embedded = await self._embedded(group, turns)
            if embedded is None:
                return  # passes through as it came: the later stages still decide
            queries |= embedded
        vector = queries[0]
        if known is None:
            await self._index.upsert(stored_image(group.image), vector)
        neighbours, stored = await asyncio.gather(
            # +1: the image itself takes a place (merge drops it).
            self._index.search(vector, c.neighbours + 1),
            self._index.vectors([x.image_id for x in group.candidates]),
        )
        merged = merge(
            group.image_id,
            list(group.candidates),
            similarities(group.candidates, stored, queries),
            neighbours,
            c.thresholds,
            c.neighbours,
        )
        del group.candidates[:]
        group.candidates.extend(merged)

    async def _embedded(self, group: CandidateGroup, turns: set[int]) -> dict[int, Vector] | None:
        """turn -> the embedding of the working copy turned so, or None (logged) when
        there is no working copy to read."""
        rgb = await self._working_copy(group)
        if rgb is None:
            return None
        side = self._config.side
        inputs = await asyncio.to_thread(lambda: {t: model_input(rgb, side, t) for t in turns})
        vectors = await asyncio.gather(*(self._embed(x) for x in inputs.values()))
        return dict(zip(inputs, vectors, strict=True))

    async def _working_copy(self, group: CandidateGroup) -> RGB | None:
        """The decoded working copy, or None (logged) when there is none to read."""
        url = group.image.working_copy_url
        where = self._blobs.locate(url) if url else None
        if where is None:
            log.warning("no readable working copy URL %r; passed through", url,
                        extra={"image_id": group.image_id})  # fmt: skip
            return None
        try:
            data = await self._blobs.download(*where, self._config.max_download_bytes)
            return await asyncio.to_thread(decode_rgb, data)
        except (BlobMissingError, BlobTooLargeError, UnreadableWorkingCopyError) as error:
            # Gone since the hasher wrote it (a later overwrite or delete of the image, whose
            # own event follows), or not a working copy we can read: nothing to embed.
            log.warning("working copy unusable: %s; passed through", error,
                        extra={"image_id": group.image_id})  # fmt: skip
            return None
