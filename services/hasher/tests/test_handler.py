"""The hasher's handler with in-memory clients: every event ends in exactly one group."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
from PIL import Image

from dedup import synthetic
from dedup.blob import BlobInfo
from dedup.budget import ByteBudget
from dedup.colour import ColourSignature, colour_distance
from dedup.errors import InvalidMessageError, TransientError
from dedup.events import BLOB_DELETED, created_from_listing
from dedup.imaging import DIHEDRAL, INVERSE, apply_dihedral
from dedup.invariants import problems
from dedup.runtime.contract import Output
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup, CandidateSource, Verdict
from services.hasher.features import extract
from services.hasher.handler import (
    Hasher,
    HasherConfig,
    transform_of_candidate,
    working_copy_name,
)
from services.hasher.index import Radii
from services.hasher.settings import HasherSettings
from services.hasher.stage import count_images, status_label
from services.hasher.tests import synth
from services.hasher.tests.fakes import FakeBlobs, FakeIndex

UPLOADS = "uploads"
WORKING = "dedup-working"
CONFIG = HasherConfig(
    working_container=WORKING,
    max_download_bytes=2_000_000,
    pdq_radius=80,
    wavelet_radius=28,
    max_candidates=8,
)


def event(name: str, data: bytes, etag: str = "0x1") -> BlobEvent:
    info = BlobInfo(
        name=name, size=len(data), etag=etag, content_type="image/jpeg", last_modified=1
    )
    return created_from_listing("acct", "http://blobs", UPLOADS, info)


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    return synthetic.encode(img, "JPEG", quality)


@pytest.fixture
def blobs() -> FakeBlobs:
    return FakeBlobs()


@pytest.fixture
def index() -> FakeIndex:
    return FakeIndex(Radii(CONFIG.pdq_radius, CONFIG.wavelet_radius, CONFIG.max_candidates))


@pytest.fixture
def hasher(blobs: FakeBlobs, index: FakeIndex) -> Hasher:
    return Hasher(blobs, index, extract, CONFIG)


async def put_and_handle(
    hasher: Hasher, blobs: FakeBlobs, name: str, data: bytes
) -> CandidateGroup:
    blobs.blobs[UPLOADS, name] = data
    (output,) = await hasher.handle(event(name, data))
    assert isinstance(output.message, CandidateGroup)
    assert output.key == output.message.image_id
    return output.message


async def test_a_new_image_is_described_stored_indexed_and_has_no_candidates(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    data = jpeg(synthetic.photo(1, (900, 600)))
    group = await put_and_handle(hasher, blobs, "a.jpg", data)

    image = group.image
    assert image.status == ImageStatus.IMAGE_STATUS_OK and not image.reason
    assert (image.width, image.height, image.format) == (900, 600, "JPEG")
    assert image.size_bytes == len(data) and image.e_tag == "0x1"
    assert len(image.wavelet_hash) == 32 and len(image.pdq_hash) == 32
    assert 0 < image.quality <= 1 and image.quality_parts.resolution > 0
    assert ColourSignature.from_bytes(image.colour_signature).is_greyscale == image.greyscale
    assert image.working_copy_url == f"http://blobs/{WORKING}/{working_copy_name(image.image_id)}"
    copy = Image.open(io.BytesIO(blobs.blobs[WORKING, working_copy_name(image.image_id)]))
    assert copy.size == (512, 341)
    assert list(group.candidates) == [] and list(group.stages) == ["hasher"]
    assert group.event.blob_name == "a.jpg"
    assert index.records[image.image_id].pdq == image.pdq_hash
    assert blobs.downloads == [(UPLOADS, "a.jpg")]  # downloaded once


async def test_an_edit_finds_its_original_with_what_later_stages_need(
    hasher: Hasher, blobs: FakeBlobs
) -> None:
    original = synthetic.photo(2, (800, 600))
    first = await put_and_handle(hasher, blobs, "original.jpg", jpeg(original))
    await put_and_handle(hasher, blobs, "other.jpg", jpeg(synthetic.photo(3, (800, 600))))
    edit = synthetic.EDITS["resize-half"](original)
    group = await put_and_handle(hasher, blobs, "half.png", synthetic.encode(edit, "PNG"))

    assert [c.image_id for c in group.candidates] == [first.image_id]
    # What the hasher publishes keeps the rules every later stage checks.
    assert problems(group, group.image_id.encode(), complete=True) == []
    (candidate,) = group.candidates
    assert candidate.source == CandidateSource.CANDIDATE_SOURCE_HASH
    assert candidate.verdict == Verdict.VERDICT_PENDING
    assert candidate.blob_url == first.image.blob_url
    assert candidate.quality == pytest.approx(first.image.quality)
    assert candidate.colour_signature == first.image.colour_signature
    assert candidate.greyscale == first.image.greyscale
    assert candidate.working_copy_url == first.image.working_copy_url
    assert candidate.scores.HasField("pdq_distance") and candidate.scores.pdq_distance <= 31
    assert candidate.scores.HasField("wavelet_distance")
    assert candidate.scores.pdq_transform == 0
    for unset in ("colour_distance", "embedding_similarity", "inliers"):
        assert not candidate.scores.HasField(unset)


async def test_research_finds_images_stored_later_from_the_stored_hashes_alone(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    original = synthetic.photo(2, (800, 600))
    first = await put_and_handle(hasher, blobs, "original.jpg", jpeg(original))
    turned = synthetic.encode(Image.fromarray(np.rot90(np.asarray(original)).copy()), "PNG")
    later = await put_and_handle(hasher, blobs, "turned.png", turned)
    assert first.candidates == [] and len(first.image.pdq_dihedral) == 8
    blobs.blobs.clear()  # no pixels are read again
    stored_before = dict(index.records)

    again = await hasher.research(first)

    (candidate,) = again.candidates
    assert candidate.image_id == later.image_id
    assert candidate.e_tag == later.image.e_tag
    # The same pair seen from the other side: the turns are each other's inverse.
    assert candidate.scores.pdq_transform == INVERSE[later.candidates[0].scores.pdq_transform]
    assert again.image == first.image and index.records == stored_before


async def test_without_search_an_image_is_stored_and_its_group_has_no_candidates(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    original = synthetic.photo(2, (800, 600))
    first = await put_and_handle(hasher, blobs, "original.jpg", jpeg(original))
    blobs.blobs[UPLOADS, "copy.png"] = synthetic.encode(original, "PNG")
    (output,) = await hasher.handle(event("copy.png", blobs.blobs[UPLOADS, "copy.png"]),
                                    search=False)  # fmt: skip
    stored = output.message
    assert isinstance(stored, CandidateGroup) and stored.candidates == []
    assert stored.image.pdq_hash and stored.image_id in index.records
    # Searched afterwards, the two find each other.
    assert [c.image_id for c in (await hasher.research(stored)).candidates] == [first.image_id]


@pytest.mark.parametrize("transform", range(1, 8))
async def test_a_turned_copy_names_the_turn_that_maps_the_candidate_onto_it(
    hasher: Hasher, blobs: FakeBlobs, transform: int
) -> None:
    original = np.asarray(synthetic.photo(4, (640, 480)))
    first = await put_and_handle(
        hasher, blobs, "o.png", synthetic.encode(Image.fromarray(original), "PNG")
    )
    turned = np.ascontiguousarray(apply_dihedral(original, transform))
    group = await put_and_handle(
        hasher, blobs, "t.png", synthetic.encode(Image.fromarray(turned), "PNG")
    )

    (candidate,) = group.candidates
    assert candidate.image_id == first.image_id
    assert candidate.scores.pdq_distance <= 8, DIHEDRAL[transform]
    # The candidate turned by pdq_transform is the new image: the verifier's colour
    # distance under that transform is the smallest of the eight.
    assert candidate.scores.pdq_transform == transform
    new_sig = ColourSignature.from_bytes(group.image.colour_signature)
    stored_sig = ColourSignature.from_bytes(candidate.colour_signature)
    under = colour_distance(new_sig, stored_sig, candidate.scores.pdq_transform)
    assert under == pytest.approx(colour_distance(new_sig, stored_sig), abs=1e-6)
    assert under < 0.03


def test_inverse_undoes_every_transform() -> None:
    a = np.arange(12).reshape(3, 4)
    for t in range(8):
        assert np.array_equal(apply_dihedral(apply_dihedral(a, t), INVERSE[t]), a)
        assert transform_of_candidate(t) == INVERSE[t]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\xff\xd8\xff\xe0 truncated jpeg", ImageStatus.IMAGE_STATUS_CORRUPT),
        (b"just some text, not an image at all", ImageStatus.IMAGE_STATUS_CORRUPT),
        (b"%PDF-1.4 a document", ImageStatus.IMAGE_STATUS_UNSUPPORTED),
        (b"", ImageStatus.IMAGE_STATUS_EMPTY),
    ],
)
async def test_an_unreadable_file_still_yields_a_group_with_status_and_reason(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex, data: bytes, status: int
) -> None:
    group = await put_and_handle(hasher, blobs, "bad.jpg", data)
    assert group.image.status == status and group.image.reason
    assert list(group.candidates) == []
    assert index.records == {} and index.deleted == [group.image_id]


async def test_a_missing_blob_is_reported_missing(hasher: Hasher, index: FakeIndex) -> None:
    (output,) = await hasher.handle(event("gone.jpg", b"x" * 10))
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image.status == ImageStatus.IMAGE_STATUS_MISSING
    assert "not found" in output.message.image.reason


@pytest.mark.parametrize("name", ["a/../b.jpg", "./b.jpg", "a/./b.jpg", "x" * 1025])
async def test_a_name_no_blob_can_have_is_missing_not_a_failure(
    hasher: Hasher, blobs: FakeBlobs, name: str
) -> None:
    blobs.blobs[UPLOADS, name] = jpeg(synthetic.photo(3))  # what the store would not hold
    (output,) = await hasher.handle(event(name, b"x" * 10))
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image.status == ImageStatus.IMAGE_STATUS_MISSING
    assert "name" in output.message.image.reason


async def test_too_large_is_refused_before_download_when_the_event_says_so(
    hasher: Hasher, blobs: FakeBlobs
) -> None:
    big = event("big.jpg", b"")
    big.data.content_length = CONFIG.max_download_bytes + 1
    (output,) = await hasher.handle(big)
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image.status == ImageStatus.IMAGE_STATUS_TOO_LARGE
    assert blobs.downloads == []


async def test_too_large_is_refused_when_the_blob_grew_after_the_event(
    hasher: Hasher, blobs: FakeBlobs
) -> None:
    blobs.blobs[UPLOADS, "grew.jpg"] = b"x" * (CONFIG.max_download_bytes + 1)
    (output,) = await hasher.handle(event("grew.jpg", b"small"))
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image.status == ImageStatus.IMAGE_STATUS_TOO_LARGE


async def test_a_dependency_that_is_down_is_transient(hasher: Hasher, blobs: FakeBlobs) -> None:
    blobs.fail_with = TransientError("blob storage unreachable")
    with pytest.raises(TransientError):
        await hasher.handle(event("a.jpg", b"x"))


async def test_a_deleted_blob_leaves_the_index_and_flows_on_as_deleted(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    original = synthetic.photo(5)
    first = await put_and_handle(hasher, blobs, "a.jpg", jpeg(original))
    gone = event("a.jpg", b"")
    gone.event_type = BLOB_DELETED
    (output,) = await hasher.handle(gone)
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image.status == ImageStatus.IMAGE_STATUS_DELETED
    assert output.key == first.image_id
    assert index.records == {}
    assert (WORKING, working_copy_name(first.image_id)) not in blobs.blobs
    # A copy arriving afterwards no longer finds it.
    copy = await put_and_handle(hasher, blobs, "b.jpg", jpeg(original, 70))
    assert list(copy.candidates) == []


async def test_an_overwritten_blob_replaces_its_record(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    first = await put_and_handle(hasher, blobs, "a.jpg", jpeg(synthetic.photo(6)))
    replaced = synthetic.photo(7)
    blobs.blobs[UPLOADS, "a.jpg"] = jpeg(replaced)
    (output,) = await hasher.handle(event("a.jpg", jpeg(replaced), etag="0x2"))
    assert isinstance(output.message, CandidateGroup)
    assert output.message.image_id == first.image_id
    assert list(output.message.candidates) == []  # never itself
    assert index.records[first.image_id].e_tag == "0x2"
    assert (
        index.records[first.image_id].pdq == output.message.image.pdq_hash != first.image.pdq_hash
    )
    # An overwrite with a broken file takes the image out of the index.
    blobs.blobs[UPLOADS, "a.jpg"] = b"broken"
    (broken,) = await hasher.handle(event("a.jpg", b"broken", etag="0x3"))
    assert isinstance(broken.message, CandidateGroup)
    assert broken.message.image.status == ImageStatus.IMAGE_STATUS_CORRUPT
    assert index.records == {}


async def test_redelivery_gives_the_same_group(hasher: Hasher, blobs: FakeBlobs) -> None:
    data = jpeg(synthetic.photo(8))
    await put_and_handle(hasher, blobs, "a.jpg", jpeg(synthetic.photo(8), 60))
    first = await put_and_handle(hasher, blobs, "b.jpg", data)
    again = await put_and_handle(hasher, blobs, "b.jpg", data)
    assert first == again and len(first.candidates) == 1


async def test_candidates_are_capped_nearest_first(blobs: FakeBlobs, index: FakeIndex) -> None:
    hasher = Hasher(blobs, index, extract, HasherConfig(WORKING, 2_000_000, 80, 28, 2))
    original = synthetic.photo(9)
    for q in (50, 70, 90):
        await put_and_handle(hasher, blobs, f"q{q}.jpg", jpeg(original, q))
    group = await put_and_handle(hasher, blobs, "png.png", synthetic.encode(original, "PNG"))
    assert len(group.candidates) == 2
    keys = [min(c.scores.pdq_distance, c.scores.wavelet_distance) for c in group.candidates]
    assert keys == sorted(keys)


async def test_events_that_are_not_about_a_blob_are_invalid(hasher: Hasher) -> None:
    with pytest.raises(InvalidMessageError):
        await hasher.handle(BlobEvent(image_id="x", event_type="Microsoft.Storage.BlobCreated"))
    odd = event("a.jpg", b"")
    odd.event_type = "Microsoft.Storage.BlobTierChanged"
    with pytest.raises(InvalidMessageError):
        await hasher.handle(odd)


def test_metrics_count_new_images_by_status_not_deletions() -> None:
    from dedup import metrics

    def value(status: str) -> float:
        return float(metrics.IMAGES.labels("hasher", status)._value.get())

    ok, corrupt, deleted = value("ok"), value("corrupt"), value("deleted")
    groups = [
        CandidateGroup(image_id=str(i), image=ImageFeatures(status=s))
        for i, s in enumerate(
            (
                ImageStatus.IMAGE_STATUS_OK,
                ImageStatus.IMAGE_STATUS_CORRUPT,
                ImageStatus.IMAGE_STATUS_DELETED,
            )
        )
    ]
    count_images([Output(g.image_id, g) for g in groups])
    assert (value("ok"), value("corrupt"), value("deleted")) == (ok + 1, corrupt + 1, deleted)
    assert status_label(ImageStatus.IMAGE_STATUS_TOO_LARGE) == "too_large"


def test_settings_come_from_dedup_hasher_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_HASHER_PDQ_RADIUS", "40")
    monkeypatch.setenv("DEDUP_HASHER_COLLECTION", "c1")
    s = HasherSettings()
    assert (s.pdq_radius, s.collection, s.http_port) == (40, "c1", 9101)
    assert (s.input_topic, s.output_topic) == ("dedup.blob-events.v1", "dedup.hashed.v1")


async def test_events_about_working_copies_are_skipped(hasher: Hasher, blobs: FakeBlobs) -> None:
    copy = event("x.jpg", b"data")
    copy.container = WORKING
    assert await hasher.handle(copy) == []
    assert blobs.downloads == []


async def test_an_image_over_the_decode_budget_is_too_large_with_a_reason(
    blobs: FakeBlobs, index: FakeIndex
) -> None:
    budget = ByteBudget(64 << 20)  # an 8000 x 8000 grey PNG needs ~330 MiB at its peak
    hasher = Hasher(blobs, index, partial(extract, budget=budget), CONFIG)
    data = synth.png(Image.new("I;16", (8000, 8000)))
    group = await put_and_handle(hasher, blobs, "huge.png", data)
    assert group.image.status == ImageStatus.IMAGE_STATUS_TOO_LARGE
    assert "decode memory budget of 64 MiB" in group.image.reason
    assert budget.in_use == 0
    # ... and the next image, which fits, is decoded as usual.
    group = await put_and_handle(hasher, blobs, "ok.jpg", jpeg(synth.photo(2)))
    assert group.image.status == ImageStatus.IMAGE_STATUS_OK


async def test_an_image_restored_from_its_stored_features_is_found_without_pixels(
    hasher: Hasher, blobs: FakeBlobs, index: FakeIndex
) -> None:
    """`dedup scan` resuming: a group hashed by an earlier process, indexed again."""
    original = synthetic.photo(2, (800, 600))
    first = await put_and_handle(hasher, blobs, "original.jpg", jpeg(original))
    copy = await put_and_handle(hasher, blobs, "copy.png", synthetic.encode(original, "PNG"))
    index.records.clear()  # a new process: an empty index
    blobs.blobs.clear()  # and no pixels read

    await hasher.restore(first.image)
    await hasher.restore(copy.image)
    broken = CandidateGroup(image_id="x", image=ImageFeatures(image_id="x"))
    broken.image.status = ImageStatus.IMAGE_STATUS_CORRUPT
    await hasher.restore(broken.image)  # not indexed: nothing to search with

    assert set(index.records) == {first.image_id, copy.image_id}
    assert [c.image_id for c in (await hasher.research(copy)).candidates] == [first.image_id]
