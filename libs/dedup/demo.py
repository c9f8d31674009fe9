"""`dedup demo`: upload generated photos with duplicates to Azurite, publish their
BlobCreated events, run every stage built so far on the local stack, and report what
each stage did. Everything is real: Azurite, Kafka and the services' own processes.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dedup import topics
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.listing import Source, WatchState, poll
from dedup.pipeline import StageInfo, runnable_stages
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings, service_config
from dedup.synthetic import sample_set

ACCOUNT = "devstoreaccount1"


class DemoSettings(KafkaSettings, BlobSettings):
    """Where the demo finds Kafka and blob storage: DEDUP_DEMO_* (defaults: the local stack)."""

    model_config = service_config("demo")


@dataclass(frozen=True)
class DemoOptions:
    originals: int
    edits: int
    container: str
    timeout_seconds: float
    log_dir: Path


def say(text: str) -> None:
    print(text, flush=True)


async def upload_samples(store: BlobStore, options: DemoOptions, prefix: str) -> int:
    files = sample_set(options.originals, options.edits, seed=int(time.time()) % 1000)
    await store.ensure_container(options.container)
    for i, f in enumerate(files, 1):
        await store.upload(options.container, f"{prefix}/{f.name}", f.data, _content_type(f.name))
        print(f"\r  uploaded {i}/{len(files)}", end="", flush=True)
    print()
    return len(files)


def _content_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}.get(ext, "")


async def publish_events(store: BlobStore, kafka: KafkaSettings, source: Source) -> set[str]:
    """One pass of `dedup ingest watch` over the uploaded prefix: the same code path."""
    ids: set[str] = set()
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([source.topic])
        await poll(
            store,
            publisher,
            source,
            WatchState(source.container, source.prefix),
            on_event=lambda event: ids.add(event.image_id),
        )
    return ids


async def keys_in(kafka: KafkaSettings, topic: str, wanted: set[str]) -> Counter[str]:
    """How many records each wanted key has in `topic`."""
    return Counter(
        [r.key async for r in read_topic(kafka, topic, idle_seconds=0.5) if r.key in wanted]
    )


def start_stage(stage: StageInfo, log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{stage.name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", stage.module], stdout=log, stderr=log)


async def follow(
    kafka: KafkaSettings, stages: list[StageInfo], ids: set[str], patience: float
) -> dict[str, Counter[str]]:
    """Wait until the last stage has an output for every image (or time runs out)."""
    deadline = time.monotonic() + patience
    last = stages[-1].output_topic
    while True:
        done = await keys_in(kafka, last, ids)
        say(f"  {stages[-1].name}: {len(done)}/{len(ids)} images out")
        if len(done) >= len(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    return {s.name: await keys_in(kafka, s.output_topic, ids) for s in stages}


async def run_demo(options: DemoOptions) -> int:
    settings = DemoSettings()
    kafka: KafkaSettings = settings
    prefix = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    say(f"dedup demo: {options.originals} generated photos, some with edited copies")
    async with open_service(settings) as service:
        store = BlobStore(service, "demo")
        count = await upload_samples(store, options, prefix)
        say(f"1. uploaded {count} images to Azurite: {options.container}/{prefix}/")
        source = Source(
            account=service.account_name or ACCOUNT,
            account_url=service.url,
            container=options.container,
            topic=topics.BLOB_EVENTS,
            prefix=f"{prefix}/",
        )
        ids = await publish_events(store, kafka, source)
    say(f"2. published {len(ids)} BlobCreated events to {topics.BLOB_EVENTS}")
    events = await keys_in(kafka, topics.BLOB_EVENTS, ids)
    say(f"   read back from Kafka: {len(events)}/{len(ids)}")

    built = runnable_stages()
    if not built:
        say("3. no stage service is built in this checkout yet: the events wait in Kafka")
        return 0 if len(events) == len(ids) else 1
    options.log_dir.mkdir(parents=True, exist_ok=True)
    say(f"3. starting {', '.join(s.name for s in built)} (logs in {options.log_dir}/)")
    procs = [start_stage(s, options.log_dir) for s in built]
    try:
        outputs = await follow(kafka, built, ids, options.timeout_seconds)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=90)
    say("4. per stage, images in -> out (and dead-lettered):")
    ok = True
    for stage in built:
        dead = len([r async for r in read_topic(kafka, topics.dead_letter(stage.input_topic))])
        out = outputs[stage.name]
        ok &= len(out) == len(ids)
        say(f"   {stage.name:9s} {len(ids):4d} -> {len(out):4d}   dlq total {dead}")
    return 0 if ok else 1


def main(args: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="dedup demo", description=__doc__)
    parser.add_argument("--originals", type=int, default=16)
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--container", default="uploads")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--log-dir", type=Path, default=Path(os.getcwd()) / ".run" / "demo")
    ns = parser.parse_args(args)
    options = DemoOptions(ns.originals, ns.edits, ns.container, ns.timeout, ns.log_dir)
    return asyncio.run(run_demo(options))
