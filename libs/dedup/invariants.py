"""The rules a message must keep to cross a topic, written once (protos/dedup/v1/*.proto).

Protobuf checks only the wire format: a group whose image id differs from its key, with a
negative width and a NaN quality, parses fine, and a stage would act on it (the ranker
once published a UNIQUE decision for exactly that). The stage runtime checks every
message it consumes against these rules and dead-letters one that breaks them, with
every broken rule in its `dedup-error` header.

`problems` lists what is wrong (empty: valid); `check` raises `InvalidMessageError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from google.protobuf.message import Message

from dedup.errors import InvalidMessageError
from dedup.v1.events_pb2 import BlobEvent, EventSchema
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, CandidateSource, Scores, Verdict

HASH_BITS: Final = 256  # PDQ and the wavelet hash: 256-bit, 32 bytes
HASH_BYTES: Final = HASH_BITS // 8
DIHEDRAL_COUNT: Final = 8  # pdq_transform indexes dedup.imaging.DIHEDRAL
# float32 rounding of a unit vector's dot product can land just outside [-1, 1].
SIMILARITY_SLACK: Final = 1e-3


def check(message: Message, key: bytes | None, *, complete: bool = False) -> None:
    """Raise InvalidMessageError naming every rule `message` (read with `key`) breaks."""
    found = problems(message, key, complete=complete)
    if found:
        raise InvalidMessageError("; ".join(found))


def problems(message: Message, key: bytes | None, *, complete: bool = False) -> list[str]:
    """What is wrong with a consumed message. `complete`: the group has been through every
    stage before the ranker, so an OK image's sizes must be known (the ranker keeps the
    best copy by them)."""
    found = key_problems(message, key)
    if isinstance(message, BlobEvent):
        found += event_problems(message)
    elif isinstance(message, CandidateGroup):
        found += group_problems(message, complete=complete)
    return found


def key_problems(message: Message, key: bytes | None) -> list[str]:
    """Every message that crosses a topic is keyed by its image id."""
    if "image_id" not in message.DESCRIPTOR.fields_by_name:
        return []
    image_id: str = getattr(message, "image_id")  # noqa: B009 (not known to the type checker)
    if not image_id:
        return ["image_id is empty"]
    if key is None:
        return ["the record has no key (it must be the image id)"]
    if key != image_id.encode():
        return [f"key {_shown(key)} is not the image id {image_id!r}"]
    return []


def event_problems(event: BlobEvent) -> list[str]:
    found = []
    if event.schema not in EventSchema.values():
        found.append(f"unknown schema {event.schema}")
    if event.data.content_length < 0:
        found.append(f"data.content_length {event.data.content_length} is negative")
    return found


def group_problems(group: CandidateGroup, *, complete: bool = False) -> list[str]:
    found = image_problems(group.image, group.image_id, complete=complete)
    seen: set[str] = set()
    for i, candidate in enumerate(group.candidates):
        where = f"candidates[{i}]"
        if candidate.image_id == group.image_id:
            found.append(f"{where} is the image itself ({candidate.image_id!r})")
        elif candidate.image_id in seen:
            found.append(f"{where}: {candidate.image_id!r} is listed twice")
        seen.add(candidate.image_id)
        found += [f"{where}: {p}" for p in candidate_problems(candidate)]
    if any(not stage for stage in group.stages):
        found.append("stages holds an empty name")
    return found


def image_problems(image: ImageFeatures, image_id: str, *, complete: bool = False) -> list[str]:
    if image.image_id != image_id:
        return [f"image.image_id {image.image_id!r} is not the group's {image_id!r}"]
    found = []
    if image.status == ImageStatus.IMAGE_STATUS_UNSPECIFIED:
        found.append("image.status is unspecified")
    elif image.status not in ImageStatus.values():
        found.append(f"image.status {image.status} is unknown")
    for name in ("width", "height", "size_bytes"):
        value = getattr(image, name)
        if value < 0:
            found.append(f"image.{name} {value} is negative")
        elif complete and value == 0 and image.status == ImageStatus.IMAGE_STATUS_OK:
            found.append(f"image.{name} is 0 for a readable image")
    found += _unit("image.quality", image.quality)
    found += _range("image.pdq_quality", image.pdq_quality, 0, 100)
    parts = image.quality_parts
    found += _finite(
        (f"image.quality_parts.{f.name}", getattr(parts, f.name)) for f in parts.DESCRIPTOR.fields
    )
    if image.status == ImageStatus.IMAGE_STATUS_OK:
        for name in ("pdq_hash", "wavelet_hash"):
            value = getattr(image, name)
            if value and len(value) != HASH_BYTES:
                found.append(f"image.{name} has {len(value)} bytes, not {HASH_BYTES}")
        if any(len(h) != HASH_BYTES for h in image.pdq_dihedral):
            found.append(f"image.pdq_dihedral holds a hash that is not {HASH_BYTES} bytes")
    return found


def candidate_problems(candidate: Candidate) -> list[str]:
    found = []
    if not candidate.image_id:
        found.append("image_id is empty")
    if candidate.source not in CandidateSource.values():
        found.append(f"source {candidate.source} is unknown")
    if candidate.verdict not in Verdict.values():
        found.append(f"verdict {candidate.verdict} is unknown")
    found += _unit("quality", candidate.quality)
    return found + score_problems(candidate.scores)


def score_problems(scores: Scores) -> list[str]:
    """Each score that is present (absent means "not computed") is in its range."""
    present = {field.name: value for field, value in scores.ListFields()}
    found = []
    for name in ("wavelet_distance", "pdq_distance"):
        if name in present:
            found += _range(name, present[name], 0, HASH_BITS)
    if "pdq_transform" in present:
        found += _range("pdq_transform", present["pdq_transform"], 0, DIHEDRAL_COUNT - 1)
    if "embedding_similarity" in present:
        s = present["embedding_similarity"]
        limit = 1 + SIMILARITY_SLACK
        if not math.isfinite(s) or not -limit <= s <= limit:
            found.append(f"embedding_similarity {s:g} is not a cosine similarity in [-1, 1]")
    if present.get("inliers", 0) < 0:
        found.append(f"inliers {present['inliers']} is negative")
    if "inlier_ratio" in present:
        found += _unit("inlier_ratio", present["inlier_ratio"])
    for name in ("colour_distance", "aligned_residual"):
        if name in present:
            value = present[name]
            if not math.isfinite(value) or value < 0:
                found.append(f"{name} {value:g} is not a finite distance >= 0")
    return found


def _finite(values: Iterable[tuple[str, float]]) -> list[str]:
    return [f"{name} {value:g} is not finite" for name, value in values if not math.isfinite(value)]


def _unit(name: str, value: float) -> list[str]:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return [f"{name} {value:g} is not in [0, 1]"]
    return []


def _range(name: str, value: int, low: int, high: int) -> list[str]:
    return [] if low <= value <= high else [f"{name} {value} is not in [{low}, {high}]"]


def _shown(key: bytes) -> str:
    try:
        return repr(key.decode())
    except UnicodeDecodeError:
        return repr(key)


__all__ = ["check", "problems"]
