"""What a run of the stages produced: every image's decision, each topic's keys, and the
messages each stage counted as Prometheus scraped them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apps.pipeline import StageInfo, Topology
from dedup.decisions import latest_decisions
from dedup.runtime.kafka import read_topic
from dedup.settings import KafkaSettings
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus

PROMETHEUS = "http://127.0.0.1:9090"
# Prometheus scrapes every 5 s (stack/prometheus/prometheus.yml): a few scrapes' worth.
SCRAPE_PATIENCE_SECONDS = 30.0


async def keys_in(kafka: KafkaSettings, topic: str, wanted: set[str]) -> Counter[str]:
    """How many records each wanted key has in `topic`."""
    return Counter(
        [r.key async for r in read_topic(kafka, topic, idle_seconds=0.5) if r.key in wanted]
    )


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
        decisions = await latest_decisions(kafka, topic, wanted=ids, idle_seconds=0.5)
        done = len(own_decisions(decisions))
        if report:
            print(f"  ranker: {done}/{len(ids)} images decided", flush=True)
        if done >= len(ids) or time.monotonic() > deadline:
            break
        if any(p.poll() is not None for p in procs):
            print("  a service exited early: see its log", flush=True)
            break
        await asyncio.sleep(2)
    return await latest_decisions(kafka, topic, wanted=ids, idle_seconds=0.5)


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
