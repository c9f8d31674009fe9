"""The whole pipeline on the local stack, as deployed: images uploaded to Azurite ->
`dedup ingest watch` -> the five services as their own processes -> a decision for every
image -> `dedup report --json`, which must agree with `dedup scan` on the same files;
and Prometheus, scraping the services on their usual ports, counts every stage's
messages.

One run (a module fixture, ~1 minute) with topics, consumer groups, Milvus collections
and containers of its own; the metrics ports are the services' defaults (9101-9105),
which only one process each can hold: if one is taken (a `make demo` running), the
pipeline runs on free ports and the Prometheus test is skipped.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.outcomes import (
    PROMETHEUS,
    StageCounts,
    own_decisions,
    scraped_counts,
    wait_for_decisions,
)
from apps.pipeline import PIPELINE, Topology
from apps.processes import start_stages, stop_stages
from apps.scan.servers import free_port
from dedup import synthetic
from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.events import image_id
from dedup.settings import KafkaSettings, MilvusSettings
from dedup.v1.decisions_pb2 import Decision
from dedup.vectors import open_milvus
from tests.integration.conftest import ROOT
from tests.support.clusters import partition

ACCOUNT = "devstoreaccount1"
EDITS = (("resize-half", "grey", "caption"), ("mirror", "border", "crop-10"), ("blur", "rotate-90"))
PATIENCE_SECONDS = 150


def sample_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, group): originals with edits, unrelated photos, two bad files."""
    files: dict[str, tuple[bytes, str]] = {}
    for i, edits in enumerate(EDITS):
        original = synthetic.photo(9700 + i)
        files[f"album {i}/ôriginal.jpg"] = (synthetic.encode(original, quality=92), f"p{i}")
        for n, edit in enumerate(edits):
            fmt, ext = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))[(i + n) % 3]
            data = synthetic.encode(synthetic.EDITS[edit](original), fmt, quality=85)
            files[f"album {i}/copies/{edit}.{ext}"] = (data, f"p{i}")
    for i in range(2):
        files[f"other-{i}.jpg"] = (synthetic.encode(synthetic.photo(9800 + i)), f"u{i}")
    whole = files["other-0.jpg"][0]
    files["broken.jpg"] = (whole[: len(whole) // 3], "broken")
    files["notes.txt"] = (b"shopping list: milk, eggs\n", "notes")
    return files


def port_is_free(port: int) -> bool:
    """Nothing listens on it (as the services bind: closed connections do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def run(
    args: list[str], timeout: float = 120, codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode in codes, (
        f"dedup {args[0]} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    )
    return done


@dataclass
class Run:
    files: dict[str, tuple[bytes, str]]
    ids: dict[str, str]  # image id -> name
    decisions: dict[str, Decision]
    exit_codes: list[int]
    report: dict[str, dict[str, Any]]  # name -> report row
    scan: dict[str, dict[str, Any]]  # name -> scan entry
    counts: dict[str, StageCounts] | None  # None: the default ports were taken
    logs: Path


async def upload_and_run(
    tag: str,
    files: dict[str, tuple[bytes, str]],
    topology: Topology,
    tmp: Path,
    scrape: bool = True,
) -> tuple[dict[str, Decision], list[int], dict[str, StageCounts] | None]:
    """Upload, ingest, run the five services until every image is decided, stop them;
    `scrape`: on the default ports, until Prometheus has scraped their counts too."""
    container = f"e2e-uploads-{tag}"
    working = topology.env["hasher"]["DEDUP_HASHER_WORKING_CONTAINER"]
    kafka = KafkaSettings()
    ids = {image_id(ACCOUNT, container, name) for name in files}
    default_ports = scrape and all(port_is_free(s.http_port) for s in PIPELINE)
    if not default_ports:  # the pipeline still runs; Prometheus cannot see it
        for s in PIPELINE:
            topology.env[s.name][f"DEDUP_{s.name.upper()}_HTTP_PORT"] = str(free_port())
    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "e2e")
        await store.ensure_container(container)
        try:
            await asyncio.gather(*(store.upload(container, n, d) for n, (d, _) in files.items()))
            await asyncio.to_thread(
                run,
                ["ingest", "watch", "--once", "--container", container,
                 "--topic", topology.events, "--state", str(tmp / "watch.json")],
            )  # fmt: skip
            procs = start_stages(PIPELINE, topology, tmp / "logs")
            try:
                decisions = await wait_for_decisions(
                    kafka, topology.decisions, ids, PATIENCE_SECONDS, procs, report=False
                )
                counts = None
                if default_ports and len(own_decisions(decisions)) == len(ids):
                    # The services run on until Prometheus has scraped their counts.
                    counts = await scraped_counts(PROMETHEUS, PIPELINE, topology, len(ids))
            finally:
                codes = await asyncio.to_thread(stop_stages, procs)
        finally:
            await service.delete_container(container)
            await service.delete_container(working)
            milvus = open_milvus(MilvusSettings())
            for name in ("DEDUP_HASHER_COLLECTION", "DEDUP_EMBEDDER_COLLECTION"):
                stage = name.split("_")[1].lower()
                await milvus.drop_collection(topology.env[stage][name])
            await milvus.close()
    return decisions, codes, counts


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("e2e")
    tag = uuid.uuid4().hex[:10]
    topology = Topology.private(tag)
    files = sample_files()
    ids = {image_id(ACCOUNT, f"e2e-uploads-{tag}", name): name for name in files}
    decisions, codes, counts = asyncio.run(upload_and_run(tag, files, topology, tmp))

    run(["report", "--topic", topology.decisions, "--json", str(tmp / "report.json"),
         "--thumbnails", "none"])  # fmt: skip
    report = {r["path"]: r for r in json.loads((tmp / "report.json").read_text())["images"]}

    folder = tmp / "folder"
    for name, (data, _) in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    # The stack's Milvus (collections of the scan's own) and Triton: no private servers.
    stack = ["--milvus-uri", MilvusSettings().milvus_uri, "--triton-url", "127.0.0.1:8001"]
    # Exit 1: duplicates found.
    run(["scan", str(folder), "--json", str(tmp / "scan.json"), "--quiet", *stack], codes=(1,))
    scan = {e["path"]: e for e in json.loads((tmp / "scan.json").read_text())["images"]}
    yield Run(files, ids, decisions, codes, report, scan, counts, tmp / "logs")


def logs_of(r: Run) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(r.logs.glob("*.log")))


def test_every_image_gets_a_decision(pipeline_run: Run) -> None:
    r = pipeline_run
    assert own_decisions(r.decisions) == set(r.ids), logs_of(r)
    assert r.exit_codes == [0] * len(PIPELINE), logs_of(r)  # SIGTERM: a clean stop
    # The report holds every uploaded file, by its blob name, and nothing else.
    assert set(r.report) == set(r.files)
    assert r.report["broken.jpg"]["status"] == "corrupt"
    assert r.report["notes.txt"]["decision"] == "unreadable"
    # Duplicates of each original, unrelated photos alone: the ground truth.
    truth = {name: group for name, (_, group) in r.files.items()}
    assert partition({n: row["cluster"] for n, row in r.report.items()}) == partition(truth)


def test_report_agrees_with_scan(pipeline_run: Run) -> None:
    r = pipeline_run
    assert set(r.scan) == set(r.report)
    ours = {n: e["cluster"] for n, e in r.scan.items()}
    theirs = {n: row["cluster"] for n, row in r.report.items()}
    assert partition(ours) == partition(theirs)
    for name in r.files:
        assert r.scan[name]["keep"] == r.report[name]["keep"], name
        assert r.scan[name]["status"] == r.report[name]["status"], name
        assert r.scan[name]["decision"] == r.report[name]["decision"], name


def test_prometheus_counts_every_stage(pipeline_run: Run) -> None:
    r = pipeline_run
    if r.counts is None:
        pytest.skip("a port of 9101-9105 was taken: Prometheus could not scrape this run")
    for stage in PIPELINE:
        counts = r.counts[stage.name]
        # Fresh processes: what Prometheus scraped is this run's messages (at least one
        # per image; a redelivery may add some).
        assert counts.consumed >= len(r.ids), (stage.name, counts)
        assert counts.produced > 0, (stage.name, counts)
