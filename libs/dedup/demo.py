"""`dedup demo`: upload generated photos with duplicates to Azurite, publish their
BlobCreated events through the ingest watch code, run the five stages as their own
processes on the local stack, then show what came out: the report's totals and gallery,
and what Prometheus scraped from every stage. Everything is real: Azurite, Kafka,
Milvus, Triton, Prometheus and the services' own processes.

The pieces (where the services' topics and stores are, starting and stopping them,
waiting for every image's decision, asking Prometheus) are used by the end-to-end test
too, with topics and stores of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from dedup import topics
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.clitools import HelpFormatter
from dedup.listing import Source, WatchState, poll
from dedup.pipeline import PIPELINE, StageInfo, runnable_stages
from dedup.report import gallery, model
from dedup.report.cli import fetch_thumbnails, linked
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings, service_config
from dedup.synthetic import sample_set
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus

ACCOUNT = "devstoreaccount1"
PROMETHEUS = "http://127.0.0.1:9090"
# Prometheus scrapes every 5 s (stack/prometheus/prometheus.yml): a few scrapes' worth.
SCRAPE_PATIENCE_SECONDS = 30.0


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


# ---- where a pipeline run reads and writes ------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """The topics, consumer groups and stores of one run of the five services.

    `Topology()` is the services' own defaults (what `make demo` runs); `private(tag)`
    gives a test topics, groups, Milvus collections and a working container of its own.
    The metrics ports stay the defaults (9101-9105), which Prometheus scrapes.
    """

    topic: dict[str, str] = field(default_factory=dict)  # stage input topics, and "decisions"
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> extra environment

    @classmethod
    def private(cls, tag: str) -> Topology:
        names = {s.input_topic: f"e2e.{tag}.{s.input_topic}" for s in PIPELINE}
        names[topics.DECISIONS] = f"e2e.{tag}.{topics.DECISIONS}"
        env = {
            s.name: {
                f"DEDUP_{s.name.upper()}_INPUT_TOPIC": names[s.input_topic],
                f"DEDUP_{s.name.upper()}_OUTPUT_TOPIC": names[s.output_topic],
                f"DEDUP_{s.name.upper()}_GROUP_ID": f"{s.name}-{tag}",
                f"DEDUP_{s.name.upper()}_LOG_LEVEL": "WARNING",
            }
            for s in PIPELINE
        }
        env["hasher"] |= {
            "DEDUP_HASHER_COLLECTION": f"e2e_{tag}_hashes",
            "DEDUP_HASHER_WORKING_CONTAINER": f"e2e-working-{tag}",
        }
        env["embedder"]["DEDUP_EMBEDDER_COLLECTION"] = f"e2e_{tag}_embeddings"
        return cls(names, env)

    def input_topic(self, stage: StageInfo) -> str:
        return self.topic.get(stage.input_topic, stage.input_topic)

    def output_topic(self, stage: StageInfo) -> str:
        return self.topic.get(stage.output_topic, stage.output_topic)

    @property
    def events(self) -> str:
        return self.topic.get(topics.BLOB_EVENTS, topics.BLOB_EVENTS)

    @property
    def decisions(self) -> str:
        return self.topic.get(topics.DECISIONS, topics.DECISIONS)


# ---- the services as processes --------------------------------------------------------------


def start_stage(
    stage: StageInfo, log_dir: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with (log_dir / f"{stage.name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", stage.module],
            stdout=log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )


def start_stages(
    stages: Sequence[StageInfo], topology: Topology, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return [start_stage(s, log_dir, topology.env.get(s.name)) for s in stages]


def stop_stages(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 90) -> list[int]:
    """SIGTERM (each finishes its batch, flushes, commits), then wait; exit codes."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


# ---- what came out ---------------------------------------------------------------------------


async def keys_in(kafka: KafkaSettings, topic: str, wanted: set[str]) -> Counter[str]:
    """How many records each wanted key has in `topic`."""
    return Counter(
        [r.key async for r in read_topic(kafka, topic, idle_seconds=0.5) if r.key in wanted]
    )


async def latest_decisions(
    kafka: KafkaSettings, topic: str, wanted: set[str]
) -> dict[str, Decision]:
    """The latest decision of each wanted image in `topic`."""
    latest: dict[str, Decision] = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.5):
        if record.key in wanted and record.value:
            try:
                latest[record.key] = Decision.FromString(record.value)
            except DecodeError:
                continue
    return latest


def own_decisions(decisions: Mapping[str, Decision]) -> set[str]:
    """The images whose own group reached the ranker (not only known as a candidate)."""
    return {k for k, d in decisions.items() if d.status != ImageStatus.IMAGE_STATUS_UNSPECIFIED}


async def wait_for_decisions(
    kafka: KafkaSettings,
    topic: str,
    ids: set[str],
    patience: float,
    procs: Sequence[subprocess.Popen[bytes]] = (),
    report: bool = True,
) -> dict[str, Decision]:
    """Wait until every image has its own decision (or time runs out, or a service exits);
    then read once more, for the decisions published together with the last one."""
    deadline = time.monotonic() + patience
    while True:
        decisions = await latest_decisions(kafka, topic, ids)
        done = len(own_decisions(decisions))
        if report:
            say(f"  ranker: {done}/{len(ids)} images decided")
        if done >= len(ids) or time.monotonic() > deadline:
            break
        if any(p.poll() is not None for p in procs):
            say("  a service exited early: see its log")
            break
        await asyncio.sleep(2)
    return await latest_decisions(kafka, topic, ids)


def prometheus_query(url: str, query: str) -> list[dict[str, object]]:
    """The result vector of an instant query."""
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=5) as response:  # noqa: S310 (a local http URL)
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus: {body}")
    return list(body["data"]["result"])


def counter_by_topic(url: str, metric: str) -> dict[str, float]:
    """topic -> the metric summed over every series (all stages' processes) with it."""
    rows = prometheus_query(url, f"sum by (topic) ({metric})")
    out = {}
    for row in rows:
        labels, value = row["metric"], row["value"]
        assert isinstance(labels, dict) and isinstance(value, list)
        out[str(labels.get("topic", ""))] = float(value[1])
    return out


@dataclass(frozen=True)
class StageCounts:
    consumed: float
    produced: float


async def scraped_counts(
    url: str,
    stages: Sequence[StageInfo],
    topology: Topology,
    at_least: int,
    patience: float = SCRAPE_PATIENCE_SECONDS,
) -> dict[str, StageCounts]:
    """Each stage's dedup_messages_consumed_total (its input topic) and produced_total
    (its output topic) as Prometheus scraped them, once every stage's consumed count is
    `at_least` (a fresh process counts from 0) or patience runs out."""
    deadline = time.monotonic() + patience
    while True:
        consumed, produced = await asyncio.gather(
            asyncio.to_thread(counter_by_topic, url, "dedup_messages_consumed_total"),
            asyncio.to_thread(counter_by_topic, url, "dedup_messages_produced_total"),
        )
        counts = {
            s.name: StageCounts(
                consumed.get(topology.input_topic(s), 0.0),
                produced.get(topology.output_topic(s), 0.0),
            )
            for s in stages
        }
        if all(c.consumed >= at_least for c in counts.values()) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(1)


# ---- the demo --------------------------------------------------------------------------------


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

    built = runnable_stages()
    if not built:
        say("3. no stage service is built in this checkout yet: the events wait in Kafka")
        return 0
    say(f"3. starting {', '.join(s.name for s in built)} (logs in {options.log_dir}/)")
    procs = start_stages(built, topology, options.log_dir)
    try:
        if built[-1].output_topic == topics.DECISIONS:
            decisions = await wait_for_decisions(
                kafka, topology.decisions, ids, options.timeout_seconds, procs
            )
        else:  # a partial pipeline: wait for its last stage's output
            decisions = {}
            deadline = time.monotonic() + options.timeout_seconds
            while time.monotonic() < deadline:
                if len(await keys_in(kafka, topology.output_topic(built[-1]), ids)) >= len(ids):
                    break
                await asyncio.sleep(2)
        say("4. per stage, images in -> out (and dead-lettered):")
        ok = True
        for stage in built:
            out = await keys_in(kafka, topology.output_topic(stage), ids)
            dlq = topics.dead_letter(topology.input_topic(stage))
            dead = len([r async for r in read_topic(kafka, dlq, idle_seconds=0.5)])
            ok &= len(out) == len(ids)
            say(f"   {stage.name:9s} {len(ids):4d} -> {len(out):4d}   dlq total {dead}")
        # The services keep running until Prometheus has scraped their last counts.
        say(f"5. Prometheus ({options.prometheus_url}), messages per stage this run:")
        try:
            counts = await scraped_counts(options.prometheus_url, built, topology, len(ids))
            for stage in built:
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
