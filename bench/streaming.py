"""The pipeline streaming on the local stack: uploads -> `dedup ingest watch` -> the five
services, as processes, with topics, consumer groups and stores of this run's own.

Phases, in one run:

1. idle: single uploads, each waiting for its decision (upload -> decision latency on an
   idle pipeline);
2. saturation: a burst of uploads at once; decisions per second from the first upload to
   the last decision;
3. steady: uploads at half that rate for a while; upload -> decision p50, p95 and max.

Latency: from the end of the upload (client side) to the ranker's `decided_at` (the same
machine's clock). Uploads are generated photos, one in `--copy-every` an edited copy of an
earlier one (so the matcher and the ranker have work). Per service: CPU seconds per image
over the saturation and steady phases (/proc: utime + stime, with every process below it)
and resident memory (PSS) at the end, for the stack's Kafka, Milvus and Triton too (shared:
nothing else may use the stack meanwhile); and from them the replicas a 3M-image back-fill
in 24 hours needs at the chart's CPU requests.

    .venv/bin/python -m bench.streaming [--burst 200] [--steady-seconds 60] [--idle 5]

Needs the local stack (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from apps.pipeline import PIPELINE, Topology
from apps.processes import start_module, start_stages, stop_stages
from apps.scan.servers import free_port
from bench.proctree import all_stats, descendants
from dedup import synthetic
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.events import image_id
from dedup.runtime.kafka import read_topic
from dedup.settings import KafkaSettings, MilvusSettings
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus
from dedup.vectors import open_milvus

ACCOUNT = "devstoreaccount1"
EDITS = ("resize-half", "grey", "caption", "crop-10", "blur", "mirror")


@dataclass
class Uploads:
    """Names and bytes of the run's uploads, made as they are needed."""

    copy_every: int
    made: int = 0

    def next(self) -> tuple[str, bytes]:
        n = self.made
        self.made += 1
        if self.copy_every and n % self.copy_every == self.copy_every - 1:
            source = n - 1
            edit = EDITS[n % len(EDITS)]
            image = synthetic.EDITS[edit](synthetic.photo(50_000 + source))
            return f"up/{n:06d}-{edit}.jpg", synthetic.encode(image, quality=85)
        return f"up/{n:06d}.jpg", synthetic.encode(synthetic.photo(50_000 + n), quality=90)


def seconds_of(decision: Decision) -> float:
    return decision.decided_at.seconds + decision.decided_at.nanos / 1e9


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def wait_ready(port: int, patience: float = 180.0) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the service on port {port} is not ready after {patience:.0f} s")


class Run:
    def __init__(self, store: BlobStore, container: str, topology: Topology) -> None:
        self.store, self.container, self.topology = store, container, topology
        self.kafka = KafkaSettings()
        self.uploaded: dict[str, float] = {}  # image id -> when its upload ended

    async def upload(self, name: str, data: bytes) -> str:
        await self.store.upload(self.container, name, data, "image/jpeg")
        key = image_id(ACCOUNT, self.container, name)
        self.uploaded[key] = time.time()
        return key

    async def first_decisions(self, ids: set[str]) -> dict[str, Decision]:
        """Each image's first decision of its own (later ones re-decide it when a copy
        arrives: the latency is the first's)."""
        first: dict[str, Decision] = {}
        async for record in read_topic(self.kafka, self.topology.decisions, idle_seconds=0.2):
            if record.key in ids and record.key not in first and record.value:
                decision = Decision.FromString(record.value)
                if decision.status != ImageStatus.IMAGE_STATUS_UNSPECIFIED:
                    first[record.key] = decision
        return first

    async def decided(self, ids: set[str], patience: float) -> dict[str, Decision]:
        """Wait until every image of `ids` has its own decision."""
        deadline = time.monotonic() + patience
        while True:
            found = await self.first_decisions(ids)
            if len(found) == len(ids) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)

    def latencies(self, decisions: dict[str, Decision]) -> list[float]:
        return [seconds_of(d) - self.uploaded[k] for k, d in decisions.items()]


def stack_pids(run_dir: Path) -> dict[str, int]:
    """The local stack's Kafka, Milvus and Triton (stack/lib.sh's pid files)."""
    pids = {}
    for part in ("kafka", "milvus", "triton"):
        with contextlib.suppress(OSError, ValueError):
            pids[part] = int((run_dir / part / "pid").read_text())
    return pids


def cpu_and_memory(pids: dict[str, int]) -> dict[str, tuple[float, int]]:
    """name -> CPU seconds and PSS bytes of the process and everything below it (Triton's
    Python-backend stubs)."""
    stats = all_stats()
    out = {}
    for name, pid in pids.items():
        tree = [s for s in stats if s.pid == pid] + descendants(pid, stats)
        out[name] = (sum(s.cpu_seconds for s in tree), sum(s.rss_bytes for s in tree))
    return out


# A 3M-image back-fill in 24 hours, from the CPU per image measured here: each stage's
# replicas at its chart CPU request (charts/dedup/values.yaml), kept at 75 % busy.
BACKFILL_IMAGES = 3_000_000
BACKFILL_SECONDS = 24 * 3600
CPU_REQUESTS = {"hasher": 1.0, "verifier": 0.5, "embedder": 0.5, "matcher": 2.0, "ranker": 0.5}
BUSY = 0.75


def backfill_plan(cpu_ms: dict[str, float]) -> dict[str, dict[str, float]]:
    """stage -> cores needed and replicas at its request, for the back-fill's rate."""
    rate = BACKFILL_IMAGES / BACKFILL_SECONDS
    plan = {}
    for stage, request in CPU_REQUESTS.items():
        cores = rate * cpu_ms[stage] / 1000
        plan[stage] = {
            "cores": cores,
            "replicas": float(max(1, math.ceil(cores / (request * BUSY)))),
            "per_replica_per_second": request * BUSY * 1000 / cpu_ms[stage],
        }
    return plan


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: no decision"
    return (
        f"  {label}: p50 {statistics.median(values):.2f} s, p95 {percentile(values, 0.95):.2f}"
        f" s, max {max(values):.2f} s ({len(values)} images)"
    )


async def bench(args: argparse.Namespace) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    topology = Topology.private(f"bench{tag}")
    container = f"bench-stream-{tag}"
    uploads = Uploads(args.copy_every)
    result: dict[str, object] = {"tag": tag}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        ports = {}
        for s in PIPELINE:
            ports[s.name] = free_port()
            topology.env[s.name][f"DEDUP_{s.name.upper()}_HTTP_PORT"] = str(ports[s.name])
        async with open_service(BlobSettings()) as service:
            store = BlobStore(service, "bench")
            await store.ensure_container(container)
            run = Run(store, container, topology)
            procs = start_stages(PIPELINE, topology, logs)
            watch = start_module(
                "apps.cli",
                logs / "watch.log",
                args=["ingest", "watch", "--container", container, "--topic",
                      topology.events, "--state", str(Path(tmp) / "watch.json"),
                      "--interval", str(args.watch_interval)],
            )  # fmt: skip
            pids = {s.name: p.pid for s, p in zip(PIPELINE, procs, strict=True)}
            pids["ingest watch"] = watch.pid
            pids |= stack_pids(args.run_dir)
            try:
                for s in PIPELINE:
                    await asyncio.to_thread(wait_ready, ports[s.name])
                print(f"pipeline ready (logs {logs})", file=sys.stderr)
                warm = {await run.upload(*uploads.next()) for _ in range(3)}
                await run.decided(warm, 180)

                idle: list[float] = []
                for _ in range(args.idle):
                    key = await run.upload(*uploads.next())
                    idle += run.latencies(await run.decided({key}, 60))
                    await asyncio.sleep(1.0)
                print(summary("idle", idle), file=sys.stderr)

                before = cpu_and_memory(pids)
                started = time.time()
                burst = set(
                    await asyncio.gather(*(run.upload(*uploads.next()) for _ in range(args.burst)))
                )
                decisions = await run.decided(burst, args.patience)
                last = max(seconds_of(d) for d in decisions.values())
                rate = len(decisions) / (last - started)
                print(f"  saturation: {rate:.2f} decisions/s ({len(decisions)} images)",
                      file=sys.stderr)  # fmt: skip

                steady_rate = rate / 2
                steady: set[str] = set()
                began = time.monotonic()
                while time.monotonic() - began < args.steady_seconds:
                    steady.add(await run.upload(*uploads.next()))
                    await asyncio.sleep(
                        max(0.0, len(steady) / steady_rate - (time.monotonic() - began))
                    )
                steady_latency = run.latencies(await run.decided(steady, args.patience))
                print(summary(f"steady at {steady_rate:.2f}/s", steady_latency), file=sys.stderr)
                after = cpu_and_memory(pids)
                images = len(burst) + len(steady)
                per_service = {
                    name: {
                        "cpu_ms_per_image": 1000 * (after[name][0] - before[name][0]) / images,
                        "pss_mb": after[name][1] / 2**20,
                    }
                    for name in pids
                }
                result |= {
                    "idle_seconds": idle,
                    "saturation_per_second": rate,
                    "steady_rate": steady_rate,
                    "steady": {
                        "p50": statistics.median(steady_latency),
                        "p95": percentile(steady_latency, 0.95),
                        "max": max(steady_latency),
                        "images": len(steady_latency),
                    },
                    "images_seen": uploads.made,
                    "per_service": per_service,
                }
            finally:
                watch.terminate()
                await asyncio.to_thread(stop_stages, procs)
                await service.delete_container(container)
                await service.delete_container(
                    topology.env["hasher"]["DEDUP_HASHER_WORKING_CONTAINER"]
                )
                milvus = open_milvus(MilvusSettings())
                for stage, name in (("hasher", "COLLECTION"), ("embedder", "COLLECTION")):
                    await milvus.drop_collection(
                        topology.env[stage][f"DEDUP_{stage.upper()}_{name}"]
                    )
                await milvus.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=5, help="single uploads on an idle pipeline")
    parser.add_argument("--burst", type=int, default=200, help="uploads at once (saturation)")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--copy-every", type=int, default=4, help="one upload in N is a copy")
    parser.add_argument("--watch-interval", type=float, default=0.5)
    parser.add_argument("--patience", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run"), help="the local stack's (DEDUP_RUN_DIR)"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(bench(args))
    print(f"command: python -m bench.streaming {' '.join(sys.argv[1:])}")
    print(summary("idle upload -> decision", list(result["idle_seconds"])))  # type: ignore[call-overload]
    print(f"  saturation: {result['saturation_per_second']:.2f} decisions/s")
    steady = result["steady"]
    assert isinstance(steady, dict)
    print(
        f"  steady at {result['steady_rate']:.2f} uploads/s: p50 {steady['p50']:.2f} s,"
        f" p95 {steady['p95']:.2f} s, max {steady['max']:.2f} s ({steady['images']} images)"
    )
    per_service = result["per_service"]
    assert isinstance(per_service, dict)
    print(f"  per service, {result['images_seen']} images seen: CPU ms per image, PSS MB")
    for name, figures in per_service.items():
        print(f"    {name:13s} {figures['cpu_ms_per_image']:8.1f} {figures['pss_mb']:8.0f}")
    cpu_ms = {name: float(f["cpu_ms_per_image"]) for name, f in per_service.items()}
    rate = BACKFILL_IMAGES / BACKFILL_SECONDS
    print(f"  3M images in 24 h ({rate:.1f} images/s), at the chart's CPU requests, 75 % busy:")
    for stage, need in backfill_plan(cpu_ms).items():
        print(
            f"    {stage:9s} {need['cores']:5.1f} cores = {need['replicas']:3.0f} replicas"
            f" of {CPU_REQUESTS[stage]:g} CPU ({need['per_replica_per_second']:.1f} images/s each)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
