"""The matcher process on the real stack: working copies in Azurite, groups on Kafka,
verdicts out (a copy, another shot, a stranger, a missing working copy)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError
from PIL import Image

from apps.scan.servers import free_port
from dedup import synthetic
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Verdict
from services.hasher.features import extract
from tests.integration.conftest import start_module

PICTURES: dict[str, Callable[[], Image.Image]] = {
    "new": lambda: synthetic.scene(41),
    "copy": lambda: synthetic.EDITS["caption"](synthetic.scene(41)).resize((480, 360)),
    "shot": lambda: synthetic.scene(41, view=40),
    "stranger": lambda: synthetic.scene(42),
}


async def upload_working_copies(container: str) -> dict[str, str]:
    """image id -> working copy URL, made by the hasher's own code."""
    async with open_service(BlobSettings()) as service:
        blobs = BlobStore(service, "test")
        await blobs.ensure_container(container)
        return {
            name: await blobs.upload(
                container,
                f"{name}.jpg",
                extract(synthetic.encode(make(), quality=90)).working_copy,
                "image/jpeg",
            )
            for name, make in PICTURES.items()
        }


async def delete_container(container: str) -> None:
    async with open_service(BlobSettings()) as service:
        with contextlib.suppress(ResourceNotFoundError):
            await service.delete_container(container)


async def outputs(kafka: KafkaSettings, topic: str) -> dict[str, CandidateGroup]:
    out = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        out[record.key] = CandidateGroup.FromString(record.value)
    return out


async def test_the_matcher_proves_copies_and_tells_other_shots_apart(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    container = f"test-matcher-{run_id}"
    urls = await upload_working_copies(container)
    missing = urls["new"].replace("new.jpg", "gone.jpg")
    candidates = [
        Candidate(image_id=n, verdict=Verdict.VERDICT_PENDING, working_copy_url=urls[n])
        for n in ("copy", "shot", "stranger")
    ]
    candidates.append(
        Candidate(image_id="gone", verdict=Verdict.VERDICT_PENDING, working_copy_url=missing)
    )
    candidates.append(
        Candidate(
            image_id="settled",
            verdict=Verdict.VERDICT_REJECTED,
            decided_by="verifier",
            working_copy_url=missing,
        )
    )
    groups = [
        CandidateGroup(
            image_id="new",
            image=ImageFeatures(
                image_id="new", status=ImageStatus.IMAGE_STATUS_OK, working_copy_url=urls["new"]
            ),
            candidates=candidates,
            stages=["hasher", "verifier", "embedder"],
        ),
        CandidateGroup(
            image_id="deleted",
            image=ImageFeatures(image_id="deleted", status=ImageStatus.IMAGE_STATUS_DELETED),
            stages=["hasher", "verifier", "embedder"],
        ),
    ]
    env = {
        "DEDUP_MATCHER_INPUT_TOPIC": f"test.{run_id}.embedded",
        "DEDUP_MATCHER_OUTPUT_TOPIC": f"test.{run_id}.matched",
        "DEDUP_MATCHER_GROUP_ID": f"matcher-{run_id}",
        "DEDUP_MATCHER_HTTP_PORT": str(free_port()),
        "DEDUP_MATCHER_POLL_TIMEOUT_SECONDS": "0.2",
    }
    log = tmp_path / "matcher.log"
    try:
        async with Publisher(kafka) as publisher:
            await publisher.ensure_topics([env["DEDUP_MATCHER_INPUT_TOPIC"]])
            for g in groups:
                await publisher.publish(env["DEDUP_MATCHER_INPUT_TOPIC"], g.image_id, g)
        proc = start_module("services.matcher", env, log)
        try:
            deadline = time.monotonic() + 60
            out: dict[str, CandidateGroup] = {}
            while len(out) < len(groups):
                assert time.monotonic() < deadline, (
                    f"{len(out)} outputs:\n{log.read_text()[-3000:]}"
                )
                assert proc.poll() is None, f"the matcher exited:\n{log.read_text()[-3000:]}"
                await asyncio.sleep(0.2)
                out = await outputs(kafka, env["DEDUP_MATCHER_OUTPUT_TOPIC"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        await delete_container(container)

    judged = {c.image_id: c for c in out["new"].candidates}
    assert {k: c.verdict for k, c in judged.items()} == {
        "copy": Verdict.VERDICT_DUPLICATE,
        "shot": Verdict.VERDICT_SIMILAR,
        "stranger": Verdict.VERDICT_REJECTED,
        "gone": Verdict.VERDICT_REJECTED,
        "settled": Verdict.VERDICT_REJECTED,
    }
    assert judged["copy"].scores.inliers >= 12 and judged["copy"].scores.aligned_residual < 0.2
    assert judged["shot"].scores.aligned_residual > 0.2
    assert "unavailable" in judged["gone"].reason and judged["gone"].decided_by == "matcher"
    assert (judged["gone"].test, judged["stranger"].test) == ("unavailable", "ransac-inliers")
    assert judged["settled"].decided_by == "verifier"
    assert list(out["deleted"].stages)[-1] == "matcher"
