"""The embedder against the real Triton server (the default model), Milvus and Azurite.

1. The handler with real clients: generated photos and their edits (working copies made
   by the hasher's code, stored in Azurite), embedded by Triton in batches, kept and
   searched in Milvus. Every edit finds its original among its nearest neighbours and
   gets it as a candidate, and every copy outranks every unrelated photo; a far hash
   candidate (a generated wallpaper) is rejected; a deleted image leaves the collection.
   Generated photos look alike to a copy-detection model (another generated photo scores
   about 0.4, an unrelated real photo under 0.2: services/embedder/README.md), so some of
   them pass the add threshold here: the bench measures false candidates on real photos.
2. `python -m services.embedder` on Kafka: groups in, refined groups out, SIGTERM exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tritonclient.grpc.aio import InferenceServerClient

from apps.scan.servers import free_port
from dedup import synthetic
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings, MilvusSettings
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, CandidateSource, Verdict
from dedup.vectors import open_milvus
from services.embedder.handler import STAGE, Embedder, EmbedderConfig, Thresholds
from services.embedder.index import Neighbour, index_config
from services.embedder.inference import TritonEmbedder
from services.embedder.milvus_index import MilvusEmbeddingIndex
from services.embedder.preprocess import decode_rgb, model_input
from services.embedder.settings import EmbedderSettings
from services.hasher.features import extract
from tests.integration.conftest import start_module

# Edits that the embedder is there for (crops, captions, borders) and some the hashes also
# catch; rotations and flips are matched by the hashes, turned (see the unit tests).
EDITS = ("crop-10", "caption", "border", "brighter", "resize-half", "grey", "blur")
ORIGINALS = 8
UNRELATED = 8
DEFAULTS = EmbedderSettings()
HASH = CandidateSource.CANDIDATE_SOURCE_HASH
EMBEDDING = CandidateSource.CANDIDATE_SOURCE_EMBEDDING


@dataclass(frozen=True)
class Photo:
    image_id: str
    group: str
    data: bytes  # the working copy (JPEG, <= 512 px), as the hasher stores it


def photos() -> list[Photo]:
    out = []
    for i in range(ORIGINALS):
        original = synthetic.photo(8100 + i)
        copies = {"original": original} | {e: synthetic.EDITS[e](original) for e in EDITS}
        for edit, img in copies.items():
            data = extract(synthetic.encode(img, quality=85)).working_copy
            out.append(Photo(f"p{i}-{edit}", f"p{i}", data))
    for i in range(UNRELATED):
        data = extract(synthetic.encode(synthetic.photo(8200 + i))).working_copy
        out.append(Photo(f"u{i}", f"u{i}", data))
    # Unlike the photos: the hash candidate that the embedder is to reject.
    out.append(Photo("w0", "w0", extract(synthetic.encode(synthetic.wallpaper(8400))).working_copy))
    return out


def group_of(photo: Photo, url: str, *candidates: Candidate) -> CandidateGroup:
    image = ImageFeatures(
        image_id=photo.image_id,
        blob_url=f"http://uploads/{photo.image_id}.jpg",
        status=ImageStatus.IMAGE_STATUS_OK,
        quality=0.5,
        working_copy_url=url,
    )
    return CandidateGroup(
        image_id=photo.image_id, image=image, candidates=candidates, stages=["hasher"]
    )


@pytest.fixture
async def working(run_id: str) -> AsyncIterator[tuple[BlobStore, str]]:
    container = f"it-embedder-{run_id}"
    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "test")
        await store.ensure_container(container)
        try:
            yield store, container
        finally:
            await service.delete_container(container)


@pytest.fixture
async def collection(run_id: str) -> AsyncIterator[str]:
    name = f"it_embeddings_{run_id}"
    yield name
    milvus = open_milvus(MilvusSettings())
    await milvus.drop_collection(name)
    await milvus.close()


async def upload(store: BlobStore, container: str, items: Sequence[Photo]) -> dict[str, str]:
    urls = await asyncio.gather(
        *(store.upload(container, f"{p.image_id}.jpg", p.data, "image/jpeg") for p in items)
    )
    return {p.image_id: url for p, url in zip(items, urls, strict=True)}


async def test_edits_find_their_originals_through_triton_and_milvus(
    working: tuple[BlobStore, str], collection: str
) -> None:
    store, container = working
    items = photos()
    urls = await upload(store, container, items)
    client = InferenceServerClient(DEFAULTS.triton_url)
    milvus = open_milvus(MilvusSettings())
    model = TritonEmbedder(client, DEFAULTS.triton_model, service="test", timeout_seconds=60)
    try:
        info = await model.describe()
        index = MilvusEmbeddingIndex(
            milvus, collection, info.dim, index_config("IVF_FLAT", nlist=16, nprobe=16)
        )
        await index.ensure_collection()
        thresholds = Thresholds(DEFAULTS.add_threshold, DEFAULTS.drop_threshold)
        embedder = Embedder(
            store, model.embed, index, EmbedderConfig(info.side, 10, thresholds, 1 << 20)
        )

        async def handle(groups: Sequence[CandidateGroup]) -> dict[str, CandidateGroup]:
            # All at once, as the runtime does: Triton and Milvus get batches.
            outs = await asyncio.gather(*(embedder.handle(g) for g in groups))
            refined = [o.message for out in outs for o in out]
            assert all(isinstance(g, CandidateGroup) for g in refined)
            return {g.image_id: g for g in refined if isinstance(g, CandidateGroup)}

        firsts = [p for p in items if p.image_id.endswith("-original") or p.group == p.image_id]
        edits = [p for p in items if p not in firsts]
        await handle([group_of(p, urls[p.image_id]) for p in firsts])
        # An edit whose hasher found an unrelated image (a false hash candidate) and one
        # whose hasher found its original.
        far = Candidate(image_id="w0", source=HASH, verdict=Verdict.VERDICT_PENDING)
        near = Candidate(image_id="p1-original", source=HASH, verdict=Verdict.VERDICT_PENDING)
        groups = [group_of(p, urls[p.image_id]) for p in edits]
        groups[0].candidates.append(far)
        by_id = {g.image_id: g for g in groups}
        by_id["p1-grey"].candidates.append(near)
        out = await handle(groups)

        async def nearest(p: Photo) -> list[Neighbour]:
            vector = await model.embed(model_input(decode_rgb(p.data), info.side))
            return [n for n in await index.search(vector, 11) if n.image.image_id != p.image_id]

        found = added = 0
        wrong: list[tuple[str, str, float]] = []
        own: dict[str, float] = {}  # each edit's similarity with its original
        for p in edits:
            neighbours = await nearest(p)
            similarity = {n.image.image_id: n.similarity for n in neighbours}
            found += f"{p.group}-original" in similarity
            own[p.image_id] = similarity.get(f"{p.group}-original", -1.0)
            for c in out[p.image_id].candidates:
                if c.source != EMBEDDING:
                    continue
                if c.image_id.startswith(f"{p.group}-"):
                    added += c.image_id == f"{p.group}-original"
                else:
                    wrong.append((p.image_id, c.image_id, c.scores.embedding_similarity))
        print(f"\n{len(edits)} edits: original among the 10 nearest {found}, added as a "
              f"candidate {added}; unrelated candidates added {len(wrong)}: {wrong}")  # fmt: skip
        # Unrelated photos: their nearest images of other groups, above the add threshold?
        apart = [
            n.similarity
            for p in items
            if p.group.startswith("u")
            for n in await nearest(p)
            if not n.image.image_id.startswith(p.group)
        ]
        above = sum(s >= DEFAULTS.add_threshold for s in apart)
        print(f"unrelated photos: {above} of their {len(apart)} nearest images of other groups "
              f"at or above {DEFAULTS.add_threshold} (most similar {max(apart):.3f})")  # fmt: skip
        assert found == len(edits)
        assert added >= 0.9 * len(edits)
        # Copies outrank look-alikes: the edits' own originals come before any photo of
        # another group, and the least similar copy is closer than any unrelated pair.
        assert all(similarity < own[edit] for edit, _, similarity in wrong)
        assert max(apart) < min(own.values())

        first = out[edits[0].image_id]
        assert first.stages == ["hasher", STAGE]
        rejected = next(c for c in first.candidates if c.image_id == "w0")
        assert rejected.verdict == Verdict.VERDICT_REJECTED and rejected.decided_by == STAGE
        kept = next(c for c in out["p1-grey"].candidates if c.image_id == "p1-original")
        assert kept.source == HASH and kept.verdict == Verdict.VERDICT_PENDING
        assert kept.scores.embedding_similarity > DEFAULTS.add_threshold

        # Redelivery: the same writes, so the same output (siblings embedded after the first
        # pass may join it, and push look-alikes of other groups out of the nearest); a
        # deletion: gone from the collection.
        again = await handle([by_id["p1-grey"]])
        assert again == await handle([by_id["p1-grey"]])
        first_ids = {c.image_id for c in out["p1-grey"].candidates if c.image_id.startswith("p1-")}
        assert first_ids <= {c.image_id for c in again["p1-grey"].candidates}
        assert "p2-original" in await index.vectors(["p2-original"])
        deleted = ImageFeatures(image_id="p2-original", status=ImageStatus.IMAGE_STATUS_DELETED)
        await embedder.handle(CandidateGroup(image_id="p2-original", image=deleted))
        assert await index.vectors(["p2-original"]) == {}
        await index.aclose()
    finally:
        await model.aclose()
        await client.close()
        await milvus.close()


async def latest(kafka: KafkaSettings, topic: str) -> dict[str, CandidateGroup]:
    groups = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        group = CandidateGroup()
        group.ParseFromString(record.value)
        groups[group.image_id] = group
    return groups


async def wait_for(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[dict[str, CandidateGroup]], bool],
    alive: Callable[[], bool],
    log: Path,
) -> dict[str, CandidateGroup]:
    deadline = time.monotonic() + 90
    groups: dict[str, CandidateGroup] = {}
    while time.monotonic() < deadline:
        groups = await latest(kafka, topic)
        if done(groups):
            return groups
        assert alive(), f"the embedder exited:\n{log.read_text()[-3000:]}"
        await asyncio.sleep(0.3)
    raise AssertionError(f"{len(groups)} groups only:\n{log.read_text()[-3000:]}")


async def test_the_embedder_service_refines_groups_on_kafka(
    kafka: KafkaSettings,
    run_id: str,
    working: tuple[BlobStore, str],
    collection: str,
    tmp_path: Path,
) -> None:
    store, container = working
    original, edit = synthetic.photo(8300), synthetic.EDITS["crop-10"](synthetic.photo(8300))
    items = [
        Photo("orig", "g", extract(synthetic.encode(original)).working_copy),
        Photo("edit", "g", extract(synthetic.encode(edit)).working_copy),
    ]
    urls = await upload(store, container, items)
    broken = CandidateGroup(
        image_id="broken",
        image=ImageFeatures(image_id="broken", status=ImageStatus.IMAGE_STATUS_CORRUPT),
        stages=["hasher"],
    )
    source, sink = f"test.{run_id}.verified", f"test.{run_id}.embedded"
    log = tmp_path / "embedder.log"
    env = {
        "DEDUP_EMBEDDER_INPUT_TOPIC": source,
        "DEDUP_EMBEDDER_OUTPUT_TOPIC": sink,
        "DEDUP_EMBEDDER_GROUP_ID": f"embedder-{run_id}",
        "DEDUP_EMBEDDER_COLLECTION": collection,
        "DEDUP_EMBEDDER_INDEX_TYPE": "FLAT",
        "DEDUP_EMBEDDER_HTTP_PORT": str(free_port()),
    }
    proc = start_module("services.embedder", env, log)
    try:
        async with Publisher(kafka) as publisher:
            await publisher.publish(source, "orig", group_of(items[0], urls["orig"]))
            await publisher.publish(source, "broken", broken)
        await wait_for(kafka, sink, lambda g: {"orig", "broken"} <= set(g),
                       lambda: proc.poll() is None, log)  # fmt: skip
        async with Publisher(kafka) as publisher:
            await publisher.publish(source, "edit", group_of(items[1], urls["edit"]))
        groups = await wait_for(kafka, sink, lambda g: "edit" in g,
                                lambda: proc.poll() is None, log)  # fmt: skip
        assert groups["broken"].stages == ["hasher", STAGE]
        assert groups["broken"].image.status == ImageStatus.IMAGE_STATUS_CORRUPT
        (found,) = groups["edit"].candidates
        assert (found.image_id, found.source) == ("orig", EMBEDDING)
        assert found.working_copy_url == urls["orig"]
        assert found.scores.embedding_similarity > DEFAULTS.add_threshold
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
