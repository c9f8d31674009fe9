"""`dedup demo`: upload generated photos with duplicates to Azurite, publish their
BlobCreated events through the ingest watch code, run the five stages as their own
processes on the local stack, then show what came out: the report's totals and gallery,
and what Prometheus scraped from every stage. Everything is real: Azurite, Kafka,
Milvus, Triton, Prometheus and the services' own processes.

Its pieces are shared with the end-to-end tests, which run them with topics and stores of
their own: the topology (apps.pipeline), the stages as processes (apps.processes), and
what came out (apps.outcomes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.outcomes import PROMETHEUS, keys_in, own_decisions, scraped_counts, wait_for_decisions
from apps.pipeline import PIPELINE, Topology
from apps.processes import start_stages, stop_stages
from dedup import topics
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.clitools import HelpFormatter
from dedup.listing import Source, WatchState, poll
from dedup.report import gallery, model
from dedup.report.cli import fetch_thumbnails, linked
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings, service_config
from dedup.synthetic import sample_set
from dedup.v1.decisions_pb2 import Decision

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
    prometheus_url: str = PROMETHEUS


def say(text: str) -> None:
    print(text, flush=True)


# ---- the demo --------------------------------------------------------------------------------


async def upload_samples(store: BlobStore, options: DemoOptions, prefix: str) -> int:
    files = sample_set(options.originals, options.edits, seed=int(time.time()) % 1000)
    await store.ensure_container(options.container)
    for i, f in enumerate(files, 1):
        await store.upload(options.container, f"{prefix}/{f.name}", f.data, content_type(f.name))
        print(f"\r  uploaded {i}/{len(files)}", end="", flush=True)
    print()
    return len(files)


def content_type(name: str) -> str:
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


async def write_report(
    settings: DemoSettings, decisions: Sequence[Decision], out_dir: Path
) -> model.Totals:
    """The report of this run's images: JSON and the gallery under `out_dir`."""
    rows = model.rows(decisions)
    thumbs = await fetch_thumbnails(settings, gallery.shown_images(rows))
    # Links that open the private blobs: a day's read-only SAS per container.
    rows, thumbs, suffix = await linked(settings, rows, thumbs, "sas", 24)
    page = gallery.render(
        rows, thumbs, title="dedup demo", source="the demo's uploads", link_suffix=suffix
    )

    def write() -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(model.to_json(rows), encoding="utf-8")
        (out_dir / "index.html").write_text(page, encoding="utf-8")

    await asyncio.to_thread(write)
    return model.totals(rows)


async def run_demo(options: DemoOptions) -> int:
    settings = DemoSettings()
    kafka: KafkaSettings = settings
    topology = Topology()
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
            topic=topology.events,
            prefix=f"{prefix}/",
        )
        ids = await publish_events(store, kafka, source)
    say(f"2. published {len(ids)} BlobCreated events to {topology.events} (ingest watch)")

    say(f"3. starting {', '.join(s.name for s in PIPELINE)} (logs in {options.log_dir}/)")
    procs = start_stages(PIPELINE, topology, options.log_dir)
    try:
        decisions = await wait_for_decisions(
            kafka, topology.decisions, ids, options.timeout_seconds, procs
        )
        say("4. per stage, images in -> out (and dead-lettered):")
        ok = True
        for stage in PIPELINE:
            out = await keys_in(kafka, topology.output_topic(stage), ids)
            dlq = topics.dead_letter(topology.input_topic(stage))
            dead = len([r async for r in read_topic(kafka, dlq, idle_seconds=0.5)])
            ok &= len(out) == len(ids)
            say(f"   {stage.name:9s} {len(ids):4d} -> {len(out):4d}   dlq total {dead}")
        # The services keep running until Prometheus has scraped their last counts.
        say(f"5. Prometheus ({options.prometheus_url}), messages per stage this run:")
        try:
            counts = await scraped_counts(options.prometheus_url, PIPELINE, topology, len(ids))
            for stage in PIPELINE:
                c = counts[stage.name]
                say(f"   {stage.name:9s} consumed {c.consumed:5.0f}   produced {c.produced:5.0f}")
            ok &= all(c.consumed > 0 and c.produced > 0 for c in counts.values())
        except OSError as error:
            say(f"   Prometheus is not reachable: {error}")
            ok = False
    finally:
        stop_stages(procs)
    if decisions:
        totals = await write_report(settings, list(decisions.values()), options.log_dir / "report")
        say(f"6. report of this run: {model.summary(totals)}")
        say(f"   HTML gallery: {options.log_dir / 'report' / 'index.html'}")
        say(f"   JSON: {options.log_dir / 'report' / 'report.json'}")
        say(
            f"   every image ever decided: .venv/bin/dedup report --html DIR ({topology.decisions})"
        )
        ok &= len(own_decisions(decisions)) == len(ids)
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedup demo", description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--originals", type=int, default=16, help="generated photos to upload")
    parser.add_argument("--edits", type=int, default=3, help="edited copies of each original")
    parser.add_argument("--container", default="uploads", help="the blob container to upload to")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for every decision"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=Path(os.getcwd()) / ".run" / "demo",
        help="where each service's log goes",
    )
    parser.add_argument("--prometheus", default=PROMETHEUS, help="Prometheus's base URL")
    return parser


def main(args: list[str] | None = None) -> int:
    ns = parser().parse_args(args)
    options = DemoOptions(
        ns.originals, ns.edits, ns.container, ns.timeout, ns.log_dir, ns.prometheus
    )
    return asyncio.run(run_demo(options))
