"""`dedup report` and `dedup act` on the real stack: decisions in Kafka, blobs in Azurite."""

import asyncio
import contextlib
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.runtime.kafka import Publisher
from dedup.settings import KafkaSettings
from dedup.synthetic import photo
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.ranker.clusters import Ranker
from tests.integration.conftest import ROOT

EVIL = '<script>alert(1)</script>"onerror=alert(2).jpg'


def jpeg(seed: int, side: int = 256) -> bytes:
    out = io.BytesIO()
    photo(seed, (side, side * 3 // 4)).save(out, "JPEG", quality=85)
    return out.getvalue()


def dedup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dedup.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def run_dedup(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(dedup, *args)


@pytest.fixture
async def service() -> AsyncIterator[BlobServiceClient]:
    async with open_service(BlobSettings()) as client:
        yield client


async def upload_image(
    service: BlobServiceClient, container: str, derived: str, name: str, seed: int, q: float
) -> CandidateGroup:
    """Upload an image and its working copy; the group the matcher would pass on."""
    store = BlobStore(service, "test")
    data = jpeg(seed, 640)
    url = await store.upload(container, name, data, "image/jpeg")
    etag = (await service.get_blob_client(container, name).get_blob_properties()).etag
    working = await store.upload(derived, f"{seed}.jpg", jpeg(seed, 256), "image/jpeg")
    image_id = f"id-{seed}"
    return CandidateGroup(
        image_id=image_id,
        image=ImageFeatures(
            image_id=image_id,
            blob_url=url,
            e_tag=etag,
            size_bytes=len(data),
            status=ImageStatus.IMAGE_STATUS_OK,
            width=640,
            height=480,
            quality=q,
            working_copy_url=working,
        ),
        event=BlobEvent(image_id=image_id, container=container, blob_name=name),
    )


def prove(group: CandidateGroup, *others: CandidateGroup) -> CandidateGroup:
    for o in others:
        group.candidates.append(
            Candidate(
                image_id=o.image_id,
                verdict=Verdict.VERDICT_DUPLICATE,
                decided_by="matcher",
                reason="geometric proof",
                scores=Scores(inliers=150, aligned_residual=0.01, pdq_distance=6),
                quality=o.image.quality,
            )
        )
    return group


async def test_report_and_act_on_the_decisions(
    kafka: KafkaSettings, run_id: str, service: BlobServiceClient, tmp_path: Path
) -> None:
    store = BlobStore(service, "test")
    container, derived, quarantine = f"t{run_id}", f"t{run_id}-wc", f"t{run_id}-q"
    topic = f"test.{run_id}.decisions"
    for c in (container, derived):
        await store.ensure_container(c)
    try:
        kept = await upload_image(service, container, derived, "best.jpg", 1, 0.9)
        worse = await upload_image(service, container, derived, "copies/worse.jpg", 2, 0.5)
        evil = await upload_image(service, container, derived, EVIL, 3, 0.4)
        alone = await upload_image(service, container, derived, "alone.jpg", 4, 0.7)
        ranker = Ranker()
        decisions = [
            d
            for g in (kept, prove(worse, kept), prove(evil, worse), alone)
            for d in ranker.handle(g).decisions
        ]
        async with Publisher(kafka) as publisher:
            await publisher.ensure_topics([topic])
            for d in decisions:
                await publisher.publish(topic, d.image_id, d)

        # --- the report ---------------------------------------------------------------
        out = tmp_path / "report"
        done = await run_dedup(
            "report",
            "--topic",
            topic,
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--html",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        assert "4 images: 1 duplicate clusters, 2 duplicates" in done.stdout
        report = json.loads((tmp_path / "r.json").read_text())
        sizes = {g.event.blob_name: g.image.size_bytes for g in (worse, evil)}
        assert report["totals"]["bytes_freed"] == sum(sizes.values())
        by_path = {i["path"]: i for i in report["images"]}
        assert by_path["best.jpg"]["keep"] and not by_path[EVIL]["keep"]
        assert by_path[EVIL]["duplicate_of"] == kept.image_id
        assert by_path[EVIL]["reason"].startswith("via id-2")
        assert len((tmp_path / "r.csv").read_text().splitlines()) == 5
        page = (out / "index.html").read_text()
        assert page.count("data:image/jpeg;base64,") == 3  # the cluster, from blob storage
        assert "<script>" not in page and '"onerror' not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;onerror=alert(2).jpg" in page

        # --- tags: dry run, then for real ---------------------------------------------
        dry = await run_dedup("act", "--tag", "--topic", topic)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("would tag") == 2
        assert await store.get_tags(container, "copies/worse.jpg") == {}
        applied = await run_dedup("act", "--tag", "--apply", "--topic", topic)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        for g in (worse, evil):
            assert await store.get_tags(container, g.event.blob_name) == {
                "dedup-duplicate-of": kept.image_id,
                "dedup-cluster": min(kept.image_id, worse.image_id, evil.image_id),
            }
        assert await store.get_tags(container, "best.jpg") == {}

        # --- quarantine: dry run moves nothing; a blob changed since is left alone --------
        dry = await run_dedup("act", "--quarantine", quarantine, "--topic", topic)
        assert dry.returncode == 0 and dry.stdout.count("would move") == 2, dry.stdout
        await store.upload(container, "copies/worse.jpg", jpeg(99), "image/jpeg")  # new ETag
        moved = await run_dedup("act", "--quarantine", quarantine, "--apply", "--topic", topic)
        assert moved.returncode == 1, moved.stdout + moved.stderr  # one was skipped
        assert "copies/worse.jpg: changed since it was judged" in moved.stdout
        assert await store.download(container, "copies/worse.jpg", 10**7) == jpeg(99)
        copy = service.get_blob_client(quarantine, f"{container}/{EVIL}")
        assert (await copy.get_blob_properties()).metadata["dedup_duplicate_of"] == kept.image_id
        assert not await service.get_blob_client(container, EVIL).exists()
        assert await service.get_blob_client(container, "best.jpg").exists()
    finally:
        for c in (container, derived, quarantine):
            with contextlib.suppress(ResourceNotFoundError):
                await service.delete_container(c)
