"""The verifier process on the real broker: colour-checked groups for every input group."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from PIL import Image, ImageOps

from apps.scan.servers import free_port
from dedup import synthetic
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.hasher.features import extract
from tests.integration.conftest import start_module


def signature(image: Image.Image) -> bytes:
    return extract(synthetic.encode(image, quality=90)).colour.to_bytes()


def group(image_id: str, own: bytes, candidates: dict[str, bytes]) -> CandidateGroup:
    return CandidateGroup(
        image_id=image_id,
        image=ImageFeatures(
            image_id=image_id, status=ImageStatus.IMAGE_STATUS_OK, colour_signature=own
        ),
        candidates=[
            Candidate(
                image_id=k,
                verdict=Verdict.VERDICT_PENDING,
                colour_signature=v,
                scores=Scores(pdq_transform=0),
            )
            for k, v in candidates.items()
        ],
        stages=["hasher"],
    )


async def outputs(kafka: KafkaSettings, topic: str) -> dict[str, CandidateGroup]:
    out = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        out[record.key] = CandidateGroup.FromString(record.value)
    return out


async def test_the_verifier_keeps_greyscale_copies_and_rejects_recoloured_designs(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    photo = synthetic.photo(31)
    groups = [
        group(
            "grey", signature(ImageOps.grayscale(photo).convert("RGB")), {"photo": signature(photo)}
        ),
        group(
            "dark",
            signature(synthetic.wallpaper(32, dark=True)),
            {"light": signature(synthetic.wallpaper(32))},
        ),
        CandidateGroup(
            image_id="broken",
            image=ImageFeatures(image_id="broken", status=ImageStatus.IMAGE_STATUS_CORRUPT),
            candidates=[Candidate(image_id="photo", verdict=Verdict.VERDICT_PENDING)],
            stages=["hasher"],
        ),
    ]
    env = {
        "DEDUP_VERIFIER_INPUT_TOPIC": f"test.{run_id}.hashed",
        "DEDUP_VERIFIER_OUTPUT_TOPIC": f"test.{run_id}.verified",
        "DEDUP_VERIFIER_GROUP_ID": f"verifier-{run_id}",
        "DEDUP_VERIFIER_HTTP_PORT": str(free_port()),
        "DEDUP_VERIFIER_POLL_TIMEOUT_SECONDS": "0.2",
    }
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([env["DEDUP_VERIFIER_INPUT_TOPIC"]])
        for g in groups:
            await publisher.publish(env["DEDUP_VERIFIER_INPUT_TOPIC"], g.image_id, g)
    log = tmp_path / "verifier.log"
    proc = start_module("services.verifier", env, log)
    try:
        deadline = time.monotonic() + 60
        out: dict[str, CandidateGroup] = {}
        while len(out) < len(groups):
            assert time.monotonic() < deadline, f"{len(out)} outputs:\n{log.read_text()[-3000:]}"
            assert proc.poll() is None, f"the verifier exited:\n{log.read_text()[-3000:]}"
            await asyncio.sleep(0.2)
            out = await outputs(kafka, env["DEDUP_VERIFIER_OUTPUT_TOPIC"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    grey = out["grey"].candidates[0]
    assert grey.verdict == Verdict.VERDICT_PENDING and grey.scores.colour_distance < 0.05
    dark = out["dark"].candidates[0]
    assert (dark.verdict, dark.decided_by) == (Verdict.VERDICT_REJECTED, "verifier")
    assert "re-coloured design" in dark.reason
    assert list(out["broken"].stages) == ["hasher", "verifier"]
    assert out["broken"].candidates[0].verdict == Verdict.VERDICT_PENDING
