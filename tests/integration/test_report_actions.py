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
from dedup.report import gallery
from dedup.runtime.kafka import Publisher
from dedup.settings import KafkaSettings
from dedup.synthetic import photo
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.ranker.handler import Ranker
from tests.integration.conftest import ROOT

EVIL = '<script>alert(1)</script>"onerror=alert(2).jpg'


def jpeg(seed: int, side: int = 256) -> bytes:
    out = io.BytesIO()
    photo(seed, (side, side * 3 // 4)).save(out, "JPEG", quality=85)
    return out.getvalue()


def dedup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
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


@pytest.fixture
async def containers(
    service: BlobServiceClient, run_id: str
) -> AsyncIterator[tuple[str, str, str]]:
    """(uploads, working copies, quarantine) of this test; the first two made, all removed."""
    names = (f"t{run_id}", f"t{run_id}-wc", f"t{run_id}-q")
    store = BlobStore(service, "test")
    for c in names[:2]:
        await store.ensure_container(c)
    try:
        yield names
    finally:
        for c in names:
            with contextlib.suppress(ResourceNotFoundError):
                await service.delete_container(c)


async def publish_decisions(
    kafka: KafkaSettings, topic: str, *groups: CandidateGroup
) -> list[Decision]:
    """The ranker's decisions on the groups, in order, published to `topic`."""
    ranker = Ranker()
    decisions = [d for g in groups for d in ranker.handle(g).decisions]
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([topic])
        for d in decisions:
            await publisher.publish(topic, d.image_id, d)
    return decisions


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
    kafka: KafkaSettings,
    run_id: str,
    service: BlobServiceClient,
    containers: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    store = BlobStore(service, "test")
    container, derived, quarantine = containers
    topic = f"test.{run_id}.decisions"
    kept = await upload_image(service, container, derived, "best.jpg", 1, 0.9)
    worse = await upload_image(service, container, derived, "copies/worse.jpg", 2, 0.5)
    evil = await upload_image(service, container, derived, EVIL, 3, 0.4)
    alone = await upload_image(service, container, derived, "alone.jpg", 4, 0.7)
    await publish_decisions(kafka, topic, kept, prove(worse, kept), prove(evil, worse), alone)

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
    embedded = gallery.embedded(page)
    thumbnail = embedded["columns"].index("thumbnail")
    shown = [row[0] for row in embedded["images"] if row[thumbnail]]
    assert len(shown) == 3 and "alone.jpg" not in shown  # the cluster's, from blob storage
    assert page.count("<script") == 2 and "<script>alert" not in page
    assert any(n.endswith(EVIL) for n in gallery.names(page))  # shown as text by the page

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
    assert f"moved: {container}/{EVIL} -> {quarantine}/{container}/{EVIL}" in moved.stdout
    assert await service.get_blob_client(container, "best.jpg").exists()


async def blob_names(service: BlobServiceClient, container: str) -> list[str]:
    """The blobs in a container; none if it does not exist."""
    client = service.get_container_client(container)
    if not await client.exists():
        return []
    return [b.name async for b in client.list_blobs()]


@pytest.mark.parametrize("change", ["kept overwritten", "kept deleted", "duplicate changed"])
async def test_a_blob_changed_since_it_was_judged_stops_the_action_with_its_reason(
    kafka: KafkaSettings,
    run_id: str,
    service: BlobServiceClient,
    containers: tuple[str, str, str],
    change: str,
) -> None:
    store = BlobStore(service, "test")
    container, derived, quarantine = containers
    topic = f"test.{run_id}.decisions"
    kept = await upload_image(service, container, derived, "best.jpg", 1, 0.9)
    copy = await upload_image(service, container, derived, "copy.jpg", 2, 0.5)
    await publish_decisions(kafka, topic, kept, prove(copy, kept))
    dry = await run_dedup("act", "--quarantine", quarantine, "--topic", topic)
    assert dry.returncode == 0 and dry.stdout.count("would move") == 1, dry.stdout

    if change == "kept overwritten":
        await store.upload(container, "best.jpg", jpeg(99), "image/jpeg")
        reason = f"its kept copy {container}/best.jpg changed since it was judged (ETag"
    elif change == "kept deleted":
        await store.delete(container, "best.jpg")
        reason = f"its kept copy {container}/best.jpg is gone (moved or deleted since"
    else:
        await store.upload(container, "copy.jpg", jpeg(99), "image/jpeg")
        reason = f"{container}/copy.jpg: changed since it was judged (ETag"
    was = await store.download(container, "copy.jpg", 10**7)

    for args in (["--tag"], ["--quarantine", quarantine]):
        for apply in ([], ["--apply"]):  # the dry run says what --apply would do
            done = await run_dedup("act", *args, *apply, "--topic", topic)
            assert done.returncode == 1, done.stdout + done.stderr
            assert reason in done.stdout, done.stdout
            assert not any(
                w in done.stdout for w in ("would tag", "would move", "tagged:", "moved:")
            )
            assert "0 duplicates (0 bytes)" in done.stdout and "1 skipped" in done.stdout
    # Nothing moved, nothing tagged: the duplicate is where it was, as it was.
    assert await store.download(container, "copy.jpg", 10**7) == was
    assert await store.get_tags(container, "copy.jpg") == {}
    assert await blob_names(service, quarantine) == []


async def test_limit_advances_and_restore_puts_every_blob_back_as_it_was(
    kafka: KafkaSettings, run_id: str, service: BlobServiceClient, containers: tuple[str, str, str]
) -> None:
    store = BlobStore(service, "test")
    container, derived, quarantine = containers
    topic = f"test.{run_id}.decisions"
    kept = await upload_image(service, container, derived, "best.jpg", 1, 0.9)
    worse = await upload_image(service, container, derived, "copies/worse.jpg", 2, 0.5)
    evil = await upload_image(service, container, derived, EVIL, 3, 0.4)
    # The owner's own metadata and tags, which a quarantine keeps and a restore brings back.
    worse_blob = service.get_blob_client(container, "copies/worse.jpg")
    await worse_blob.set_blob_metadata({"camera": "x100"})
    worse.image.e_tag = (await worse_blob.get_blob_properties()).etag  # judged after that
    await store.set_tags(container, "copies/worse.jpg", {"owner": "ann"})
    await publish_decisions(kafka, topic, kept, prove(worse, kept), prove(evil, worse))
    originals = {n: await store.download(container, n, 10**7) for n in ("copies/worse.jpg", EVIL)}
    assert (await run_dedup("act", "--tag", "--apply", "--topic", topic)).returncode == 0
    tags = {n: await store.get_tags(container, n) for n in originals}
    assert tags["copies/worse.jpg"]["owner"] == "ann"

    # --- --limit 1, three times: the first duplicate, then the next, then none ----------
    first, second = sorted(originals)  # the order of the plan: by cluster, then by name
    runs = [
        await run_dedup(
            "act", "--quarantine", quarantine, "--apply", "--limit", "1", "--topic", topic
        )
        for _ in range(3)
    ]
    assert all(r.returncode == 0 for r in runs), [r.stdout + r.stderr for r in runs]
    for run, name, before in ((runs[0], first, 0), (runs[1], second, 1)):
        assert run.stdout.count("moved: ") == 1, run.stdout
        assert f"moved: {container}/{name} -> {quarantine}/{container}/{name}" in run.stdout
        assert (
            f"1 duplicates ({len(originals[name])} bytes) moved; {before} done by an" in run.stdout
        )
    assert "0 duplicates (0 bytes) moved; 2 done by an earlier run, 0 skipped" in runs[2].stdout
    assert await blob_names(service, container) == ["best.jpg"]
    moved = service.get_blob_client(quarantine, f"{container}/copies/worse.jpg")
    assert (await moved.get_blob_properties()).metadata["camera"] == "x100"
    assert (
        await store.get_tags(quarantine, f"{container}/copies/worse.jpg")
        == tags["copies/worse.jpg"]
    )

    # --- restore: not over a blob that is there now; only what a quarantine moved --------
    await store.upload(container, EVIL, b"a new upload", "image/jpeg")
    await store.upload(quarantine, "stray.jpg", b"not ours", "image/jpeg")
    dry = await run_dedup("act", "--restore", quarantine)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert (
        f"would restore {quarantine}/{container}/copies/worse.jpg -> {container}/copies/worse.jpg"
        in dry.stdout
    )
    assert (
        f"skipped {quarantine}/{container}/{EVIL}: a blob is at {container}/{EVIL} again"
        in dry.stdout
    )
    assert f"skip {quarantine}/stray.jpg: not moved there by dedup act" in dry.stdout
    assert not await worse_blob.exists()  # a dry run
    done = await run_dedup("act", "--restore", quarantine, "--apply")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"restored: {quarantine}/{container}/copies/worse.jpg -> {container}/copies/worse.jpg"
        in done.stdout
    )
    assert await store.download(container, EVIL, 10**7) == b"a new upload"  # not replaced
    await store.delete(container, EVIL)
    done = await run_dedup("act", "--restore", quarantine, "--apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "1 blobs" in done.stdout and "restored; 0 done by an earlier run, 1 skipped" in done.stdout
    )

    # Back where they were, with their content, content type, metadata and tags.
    for name, data in originals.items():
        assert await store.download(container, name, 10**7) == data
        assert await store.get_tags(container, name) == tags[name]
        props = await service.get_blob_client(container, name).get_blob_properties()
        assert props.content_settings.content_type == "image/jpeg"
        assert not any(k.startswith("dedup_") for k in props.metadata)
    assert (await worse_blob.get_blob_properties()).metadata == {"camera": "x100"}
    assert await blob_names(service, quarantine) == ["stray.jpg"]
