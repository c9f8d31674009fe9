"""Images in Azurite -> `dedup ingest watch` -> the hasher service -> candidate groups.

Everything real: Azurite, Kafka, Milvus and the two processes. Edits find their
originals, unrelated photos do not meet, unreadable files still get a group with their
status, and a deleted blob comes out as DELETED.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from apps.scan.servers import free_port
from dedup import synthetic
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.events import BLOB_DELETED, image_id
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings, MilvusSettings
from dedup.v1.events_pb2 import BlobEvent, BlobEventData
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup
from dedup.vectors import open_milvus
from tests.integration.conftest import ROOT, start_module

ACCOUNT = "devstoreaccount1"
# Edits the hashes are meant to catch on their own (bench/hash_radii.py: recall 1.0);
# crops, captions and borders are partly left to the embedder.
EDITS = ("resize-half", "grey", "rotate-90", "mirror", "blur")


def sample_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, group): 3 originals with edits, 2 unrelated photos, 2 bad files."""
    files: dict[str, tuple[bytes, str]] = {}
    for i in range(3):
        original = synthetic.photo(7100 + i)
        files[f"p{i}.jpg"] = (synthetic.encode(original, quality=92), f"p{i}")
        for n, edit in enumerate(EDITS):
            fmt, ext = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))[(i + n) % 3]
            data = synthetic.encode(synthetic.EDITS[edit](original), fmt, quality=80)
            files[f"p{i}-{edit}.{ext}"] = (data, f"p{i}")
    for i in range(2):
        files[f"u{i}.jpg"] = (synthetic.encode(synthetic.photo(7200 + i)), f"u{i}")
    whole = files["u0.jpg"][0]
    files["broken.jpg"] = (whole[: len(whole) // 3], "broken")
    files["notes.txt"] = (b"shopping list: milk, eggs\n", "notes")
    return files


async def hashed_groups(kafka: KafkaSettings, topic: str) -> dict[str, CandidateGroup]:
    """The latest group of every image on `topic`."""
    groups = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        group = CandidateGroup()
        group.ParseFromString(record.value)
        assert record.key == group.image_id
        groups[group.image_id] = group
    return groups


async def wait_for(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[dict[str, CandidateGroup]], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
) -> dict[str, CandidateGroup]:
    deadline = time.monotonic() + 90
    groups: dict[str, CandidateGroup] = {}
    while time.monotonic() < deadline:
        groups = await hashed_groups(kafka, topic)
        if done(groups):
            return groups
        assert proc.poll() is None, f"the hasher exited:\n{log.read_text()[-3000:]}"
        await asyncio.sleep(0.3)
    raise AssertionError(f"{len(groups)} groups only:\n{log.read_text()[-3000:]}")


def run_watch(container: str, topic: str, state: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "apps.cli", "ingest", "watch", "--once"),
            *("--container", container, "--topic", topic, "--state", str(state)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def test_uploads_are_hashed_and_edits_find_their_originals(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    container, working = f"it-uploads-{run_id}", f"it-working-{run_id}"
    events, hashed = f"test.{run_id}.blob-events", f"test.{run_id}.hashed"
    collection = f"it_hashes_{run_id}"
    files = sample_files()
    ids = {image_id(ACCOUNT, container, name): name for name in files}
    group_of = {image_id(ACCOUNT, container, name): g for name, (_, g) in files.items()}

    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "test")
        await store.ensure_container(container)
        await asyncio.gather(*(store.upload(container, n, d) for n, (d, _) in files.items()))
        run_watch(container, events, tmp_path / "watch.json")

        log = tmp_path / "hasher.log"
        env = {
            "DEDUP_HASHER_INPUT_TOPIC": events,
            "DEDUP_HASHER_OUTPUT_TOPIC": hashed,
            "DEDUP_HASHER_GROUP_ID": f"hasher-{run_id}",
            "DEDUP_HASHER_COLLECTION": collection,
            "DEDUP_HASHER_WORKING_CONTAINER": working,
            "DEDUP_HASHER_HTTP_PORT": str(free_port()),
        }
        proc = start_module("services.hasher", env, log)
        try:
            groups = await wait_for(kafka, hashed, lambda g: set(ids) <= set(g), proc, log)
            assert set(groups) == set(ids)  # every image accounted for, nothing else

            status = {ids[i]: g.image.status for i, g in groups.items()}
            assert status.pop("broken.jpg") == ImageStatus.IMAGE_STATUS_CORRUPT
            assert status.pop("notes.txt") == ImageStatus.IMAGE_STATUS_CORRUPT
            assert set(status.values()) == {ImageStatus.IMAGE_STATUS_OK}
            assert groups[image_id(ACCOUNT, container, "notes.txt")].image.reason

            # A pair meets when either image lists the other (whichever was hashed last).
            met = {(i, c.image_id) for i, g in groups.items() for c in g.candidates}
            met |= {(b, a) for a, b in met}
            for i in range(3):
                original = image_id(ACCOUNT, container, f"p{i}.jpg")
                for edit_id in (e for e, g in group_of.items() if g == f"p{i}" and e != original):
                    assert (original, edit_id) in met, f"{ids[edit_id]} did not meet p{i}.jpg"
            assert all(group_of[a] == group_of[b] for a, b in met), "unrelated images met"

            # What a candidate carries for later stages, and the working copies.
            rotated_name = next(n for n in files if n.startswith("p0-rotate-90."))
            rotated = groups[image_id(ACCOUNT, container, rotated_name)]
            sample = next(iter(rotated.candidates), None) or next(
                c for g in groups.values() for c in g.candidates if c.image_id == rotated.image_id
            )
            assert sample.colour_signature and sample.working_copy_url and sample.blob_url
            copy = rotated.image.working_copy_url.rsplit("/", 1)[-1]
            assert await store.download(working, copy, 1_000_000)

            # A deleted blob leaves the index and flows on as DELETED.
            gone = image_id(ACCOUNT, container, "u1.jpg")
            async with Publisher(kafka) as publisher:
                await publisher.publish(
                    events,
                    gone,
                    BlobEvent(
                        image_id=gone,
                        account=ACCOUNT,
                        container=container,
                        blob_name="u1.jpg",
                        event_type=BLOB_DELETED,
                        data=BlobEventData(url=groups[gone].image.blob_url),
                    ),
                )
            groups = await wait_for(
                kafka,
                hashed,
                lambda g: g[gone].image.status == ImageStatus.IMAGE_STATUS_DELETED,
                proc,
                log,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
            milvus = open_milvus(MilvusSettings())
            await milvus.drop_collection(collection)
            await milvus.close()
            await service.delete_container(container)
            await service.delete_container(working)
