"""The embedder's decisions and handler, with plain objects and in-memory clients."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dedup import synthetic
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, CandidateSource, Scores, Verdict
from services.embedder.handler import (
    DROP_TEST,
    STAGE,
    Embedder,
    EmbedderConfig,
    Thresholds,
    judged,
    merge,
    model_turn,
    similarities,
)
from services.embedder.index import Neighbour, StoredImage, Vector
from services.embedder.preprocess import RGB, decode_rgb, model_input
from services.embedder.tests.fakes import FakeBlobs, FakeIndex, fake_embed

HASH = CandidateSource.CANDIDATE_SOURCE_HASH
EMBEDDING = CandidateSource.CANDIDATE_SOURCE_EMBEDDING
PENDING, REJECTED = Verdict.VERDICT_PENDING, Verdict.VERDICT_REJECTED
THRESHOLDS = Thresholds(add=0.7, drop=0.4)
CONFIG = EmbedderConfig(side=32, neighbours=5, thresholds=THRESHOLDS, max_download_bytes=1 << 20)


def hash_candidate(image_id: str, verdict: Verdict.ValueType = PENDING, **scores: int) -> Candidate:
    return Candidate(
        image_id=image_id,
        source=HASH,
        verdict=verdict,
        scores=Scores(**scores),  # type: ignore[arg-type]
    )


def neighbour(image_id: str, similarity: float) -> Neighbour:
    stored = StoredImage(image_id, f"blob/{image_id}", f"wc/{image_id}", 0.5, b"\x01\x02", True)
    return Neighbour(stored, similarity)


# ---- pure decisions ------------------------------------------------------------------------


def test_a_far_hash_candidate_is_rejected_with_the_evidence() -> None:
    c = judged(hash_candidate("b", pdq_distance=70), 0.12, drop=0.4)
    assert c.verdict == REJECTED
    assert c.decided_by == STAGE and c.test == DROP_TEST
    assert "0.120 < drop threshold 0.400" in c.reason
    assert c.scores.embedding_similarity == pytest.approx(0.12)
    assert c.scores.pdq_distance == 70  # earlier evidence kept


def test_a_strong_pdq_match_is_not_dropped_on_its_embedding() -> None:
    # A salt-and-pepper copy: its embedding is far, its PDQ hash still matches.
    c = judged(hash_candidate("b", pdq_distance=31), 0.45, drop=0.58, keep_pdq=31)
    assert c.verdict == PENDING and not c.decided_by
    assert c.scores.embedding_similarity == pytest.approx(0.45)  # still recorded
    far = judged(hash_candidate("b", pdq_distance=32), 0.45, drop=0.58, keep_pdq=31)
    assert far.verdict == REJECTED
    # Without a PDQ distance (a wavelet-only match) the drop rule applies.
    assert judged(hash_candidate("b"), 0.45, drop=0.58, keep_pdq=31).verdict == REJECTED


def test_merge_keeps_strong_pdq_matches_by_default() -> None:
    near, far = hash_candidate("b", pdq_distance=10), hash_candidate("c", pdq_distance=80)
    out = merge("a", [near, far], {"b": 0.1, "c": 0.1}, [], Thresholds(add=0.7, drop=0.4), 5)
    assert [c.verdict for c in out] == [PENDING, REJECTED]


def test_a_near_hash_candidate_stays_open_with_its_similarity() -> None:
    c = judged(hash_candidate("b"), 0.9, drop=0.4)
    assert c.verdict == PENDING
    assert not c.decided_by
    assert c.scores.embedding_similarity == pytest.approx(0.9)


def test_an_earlier_rejection_is_not_overwritten_but_gets_the_score() -> None:
    before = hash_candidate("b", REJECTED)
    before.decided_by, before.reason = "verifier", "colour distance 0.5 > 0.3"
    c = judged(before, 0.1, drop=0.4)
    assert (c.verdict, c.decided_by, c.reason) == (REJECTED, "verifier", before.reason)
    assert c.scores.embedding_similarity == pytest.approx(0.1)


def test_a_candidate_without_a_stored_embedding_is_left_as_it_is() -> None:
    before = hash_candidate("b", pdq_distance=3)
    c = judged(before, None, drop=0.4)
    assert c == before
    assert not c.scores.HasField("embedding_similarity")


def test_only_hash_candidates_are_dropped() -> None:
    before = Candidate(image_id="b", source=EMBEDDING, verdict=PENDING)
    assert judged(before, 0.0, drop=0.4).verdict == PENDING


def test_merge_adds_close_neighbours_the_hashes_missed() -> None:
    merged = merge(
        "a",
        [hash_candidate("b")],
        {"b": 0.95},
        [neighbour("a", 1.0), neighbour("b", 0.95), neighbour("c", 0.8), neighbour("d", 0.5)],
        THRESHOLDS,
        limit=5,
    )
    assert [c.image_id for c in merged] == ["b", "c"]  # not itself, not b twice, not d
    added = merged[1]
    assert added.source == EMBEDDING
    assert added.verdict == PENDING
    assert added.scores.embedding_similarity == pytest.approx(0.8)
    assert (added.blob_url, added.working_copy_url) == ("blob/c", "wc/c")
    assert added.quality == pytest.approx(0.5)
    assert (added.colour_signature, added.greyscale) == (b"\x01\x02", True)


def test_merge_adds_at_most_the_limit_most_similar_first_ties_by_id() -> None:
    found = [neighbour("z", 0.9), neighbour("y", 0.9), neighbour("x", 0.99), neighbour("w", 0.8)]
    merged = merge("a", [], {}, found, THRESHOLDS, limit=3)
    assert [c.image_id for c in merged] == ["x", "y", "z"]


def test_merge_keeps_every_incoming_candidate_in_order() -> None:
    incoming = [hash_candidate("b"), hash_candidate("c"), hash_candidate("d")]
    merged = merge("a", incoming, {"b": 0.1, "d": 0.9}, [], THRESHOLDS, limit=5)
    assert [(c.image_id, c.verdict) for c in merged] == [
        ("b", REJECTED),
        ("c", PENDING),
        ("d", PENDING),
    ]


def test_a_turned_hash_match_is_compared_with_the_new_image_turned_back() -> None:
    # pdq_transform 1 (rot90): the candidate turned 90 degrees looks like the new image,
    # so the new image turned by the inverse (rot270, index 3) looks like the candidate.
    assert model_turn(hash_candidate("b", pdq_transform=1)) == 3
    assert model_turn(hash_candidate("b", pdq_transform=4)) == 4  # a flip undoes itself
    assert model_turn(hash_candidate("b")) == 0
    upright, turned = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    sims = similarities(
        [hash_candidate("b", pdq_transform=1), hash_candidate("c"), hash_candidate("gone")],
        {"b": turned, "c": upright},
        {0: upright, 3: turned},
    )
    assert sims == {"b": pytest.approx(1.0), "c": pytest.approx(1.0)}


# ---- the handler ---------------------------------------------------------------------------


def jpeg(img: Image.Image) -> bytes:
    return synthetic.encode(img, quality=90)


def photo(seed: int) -> Image.Image:
    return synthetic.photo(seed, (96, 72))


def group(image_id: str, url: str, *candidates: Candidate) -> CandidateGroup:
    image = ImageFeatures(
        image_id=image_id,
        blob_url=f"http://blobs/account/uploads/{image_id}",
        status=ImageStatus.IMAGE_STATUS_OK,
        quality=0.7,
        working_copy_url=url,
        colour_signature=b"\x09",
    )
    return CandidateGroup(image_id=image_id, image=image, candidates=candidates, stages=["hasher"])


@pytest.fixture
def blobs() -> FakeBlobs:
    return FakeBlobs()


@pytest.fixture
def index() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
def embedder(blobs: FakeBlobs, index: FakeIndex) -> Embedder:
    return Embedder(blobs, fake_embed, index, CONFIG)


async def handled(embedder: Embedder, g: CandidateGroup) -> CandidateGroup:
    outputs = await embedder.handle(g)
    assert len(outputs) == 1
    assert outputs[0].key == g.image_id
    out = outputs[0].message
    assert isinstance(out, CandidateGroup)
    return out


async def test_an_image_finds_its_edit_and_rejects_a_far_hash_candidate(
    blobs: FakeBlobs, index: FakeIndex, embedder: Embedder
) -> None:
    original = photo(1)
    await handled(embedder, group("orig", blobs.put("wc", "orig.jpg", jpeg(original))))
    await handled(embedder, group("other", blobs.put("wc", "other.jpg", jpeg(photo(2)))))
    brighter = synthetic.EDITS["brighter"](original)
    out = await handled(
        embedder,
        group("edit", blobs.put("wc", "edit.jpg", jpeg(brighter)), hash_candidate("other")),
    )
    assert out.stages == ["hasher", STAGE]
    by_id = {c.image_id: c for c in out.candidates}
    assert by_id["other"].verdict == REJECTED  # the hashes' guess, far apart here
    assert by_id["orig"].source == EMBEDDING  # found by the embedding alone
    assert by_id["orig"].scores.embedding_similarity > THRESHOLDS.add
    assert by_id["orig"].working_copy_url == blobs.put("wc", "orig.jpg", jpeg(original))
    assert set(index.records) == {"orig", "other", "edit"}
    stored = index.records["edit"][0]
    assert stored.quality == pytest.approx(0.7)
    assert stored.colour_signature == b"\x09"


async def test_a_rotated_hash_match_is_not_dropped(blobs: FakeBlobs, embedder: Embedder) -> None:
    original = photo(3)
    await handled(embedder, group("orig", blobs.put("wc", "orig.jpg", jpeg(original))))
    turned = original.transpose(Image.Transpose.ROTATE_90)  # anticlockwise = np.rot90
    # The hasher: the candidate turned by rot90 (index 1) looks like the new image.
    candidate = hash_candidate("orig", pdq_transform=1)
    out = await handled(
        embedder, group("turned", blobs.put("wc", "t.jpg", jpeg(turned)), candidate)
    )
    (c,) = out.candidates
    assert c.verdict == PENDING
    assert c.scores.embedding_similarity > 0.9


async def test_redelivery_gives_the_same_group_and_one_record(
    blobs: FakeBlobs, index: FakeIndex, embedder: Embedder
) -> None:
    await handled(embedder, group("a", blobs.put("wc", "a.jpg", jpeg(photo(4)))))
    g = group("b", blobs.put("wc", "b.jpg", jpeg(synthetic.EDITS["crop-10"](photo(4)))))
    first = await handled(embedder, g)
    again = await handled(embedder, g)
    assert first == again
    assert sorted(index.records) == ["a", "b"]


@pytest.mark.parametrize(
    "status",
    [
        ImageStatus.IMAGE_STATUS_CORRUPT,
        ImageStatus.IMAGE_STATUS_MISSING,
        ImageStatus.IMAGE_STATUS_BOMB,
    ],
)
async def test_an_unreadable_image_passes_through(
    status: ImageStatus.ValueType, index: FakeIndex, embedder: Embedder
) -> None:
    g = group("bad", "", hash_candidate("x"))
    g.image.status, g.image.reason = status, "cannot read"
    out = await handled(embedder, g)
    expected = CandidateGroup()
    expected.CopyFrom(g)
    expected.stages.append(STAGE)
    assert out == expected
    assert not index.records


async def test_a_deleted_image_leaves_the_index(
    blobs: FakeBlobs, index: FakeIndex, embedder: Embedder
) -> None:
    await handled(embedder, group("a", blobs.put("wc", "a.jpg", jpeg(photo(5)))))
    g = CandidateGroup(
        image_id="a", image=ImageFeatures(image_id="a", status=ImageStatus.IMAGE_STATUS_DELETED)
    )
    out = await handled(embedder, g)
    assert out.stages == [STAGE]
    assert index.deleted == ["a"]
    assert not index.records


@pytest.mark.parametrize("url", ["", "http://elsewhere/wc/x.jpg", "http://blobs/account/wc/gone"])
async def test_a_missing_working_copy_passes_the_group_through(
    url: str, index: FakeIndex, embedder: Embedder
) -> None:
    g = group("x", url, hash_candidate("y"))
    out = await handled(embedder, g)
    assert list(out.candidates) == list(g.candidates)
    assert not index.records


async def test_an_undecodable_working_copy_passes_the_group_through(
    blobs: FakeBlobs, index: FakeIndex, embedder: Embedder
) -> None:
    out = await handled(embedder, group("x", blobs.put("wc", "x.jpg", b"not a jpeg")))
    assert out.stages == ["hasher", STAGE]
    assert not index.records


class CountingEmbed:
    """fake_embed, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, image: RGB) -> Vector:
        self.calls += 1
        return await fake_embed(image)


def versioned(g: CandidateGroup, e_tag: str) -> CandidateGroup:
    g.image.e_tag = e_tag
    return g


async def test_a_version_embedded_before_is_not_embedded_again(
    blobs: FakeBlobs, index: FakeIndex
) -> None:
    embed = CountingEmbed()
    embedder = Embedder(blobs, embed, index, CONFIG)
    await handled(embedder, versioned(group("a", blobs.put("wc", "a.jpg", jpeg(photo(4)))), "1"))
    edit = jpeg(synthetic.EDITS["crop-10"](photo(4)))
    g = versioned(group("b", blobs.put("wc", "b.jpg", edit)), "1")
    first = await handled(embedder, g)
    assert embed.calls == 2
    blobs.blobs.clear()  # the judging pass needs no pixels

    again = await handled(embedder, g)

    assert again == first and embed.calls == 2
    (added,) = again.candidates
    assert added.image_id == "a" and added.e_tag == "1"


async def test_an_overwritten_image_is_embedded_afresh(blobs: FakeBlobs, index: FakeIndex) -> None:
    embed = CountingEmbed()
    embedder = Embedder(blobs, embed, index, CONFIG)
    url = blobs.put("wc", "a.jpg", jpeg(photo(4)))
    await handled(embedder, versioned(group("a", url), "1"))
    blobs.put("wc", "a.jpg", jpeg(photo(5)))

    await handled(embedder, versioned(group("a", url), "2"))

    assert embed.calls == 2
    stored, vector = index.records["a"]
    assert stored.e_tag == "2"
    assert np.allclose(
        vector, await fake_embed(model_input(decode_rgb(jpeg(photo(5))), CONFIG.side))
    )


async def test_only_the_turned_query_is_embedded_again(blobs: FakeBlobs, index: FakeIndex) -> None:
    embed = CountingEmbed()
    embedder = Embedder(blobs, embed, index, CONFIG)
    original = photo(3)
    await handled(embedder, versioned(group("orig", blobs.put("wc", "o.jpg", jpeg(original))), "1"))
    url = blobs.put("wc", "t.jpg", jpeg(original.transpose(Image.Transpose.ROTATE_90)))
    await handled(embedder, versioned(group("turned", url), "1"))
    calls = embed.calls
    # Judged again, now with the hash candidate (the candidate turned by rot90 is it).
    g = versioned(group("turned", url, hash_candidate("orig", pdq_transform=1)), "1")

    again = await handled(embedder, g)

    assert embed.calls == calls + 1  # the query turned back, not the image itself
    (c,) = [c for c in again.candidates if c.image_id == "orig"]
    assert c.scores.embedding_similarity > 0.9


async def test_without_search_only_the_images_own_embedding_is_stored(
    blobs: FakeBlobs, index: FakeIndex
) -> None:
    embed = CountingEmbed()
    embedder = Embedder(blobs, embed, index, CONFIG)
    original = photo(3)
    await handled(embedder, versioned(group("orig", blobs.put("wc", "o.jpg", jpeg(original))), "1"))
    url = blobs.put("wc", "t.jpg", jpeg(original.transpose(Image.Transpose.ROTATE_90)))
    g = versioned(group("turned", url, hash_candidate("orig", pdq_transform=1)), "1")

    (output,) = await embedder.handle(g, search=False)
    (again,) = await embedder.handle(g, search=False)

    assert embed.calls == 2  # one each, the turned query not asked for, nothing twice
    assert set(index.records) == {"orig", "turned"}
    stored = output.message
    assert isinstance(stored, CandidateGroup) and list(stored.candidates) == list(g.candidates)
    assert again.message == stored


async def test_a_stored_embedding_restored_in_a_new_index_is_not_embedded_again(
    blobs: FakeBlobs, index: FakeIndex
) -> None:
    """`dedup scan` resuming: the embedding an earlier process made, stored again."""
    embed = CountingEmbed()
    embedder = Embedder(blobs, embed, index, CONFIG)
    g = versioned(group("a", blobs.put("wc", "a.jpg", jpeg(photo(4)))), "1")
    await embedder.handle(g, search=False)
    vector = await embedder.stored(g.image)
    assert vector is not None and embed.calls == 1
    assert await embedder.stored(versioned(group("a", ""), "2").image) is None  # another version

    fresh = Embedder(blobs, embed, FakeIndex(), CONFIG)
    await fresh.restore(g.image, vector)
    await fresh.handle(g, search=False)
    restored = await fresh.stored(g.image)
    assert embed.calls == 1 and restored is not None and np.allclose(restored, vector)
