"""One fault-suite case: the five services and `dedup ingest watch` as processes on the
private stack, about 100 photos with duplicates uploaded in waves, one fault injected
mid-stream, then what came out compared with the undisturbed run.

The processes are supervised the way Kubernetes would: one that exits without being
asked to is started again, and counted (a crash loop shows up as a count, not a hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families
from pydantic_settings import BaseSettings

from apps.outcomes import own_decisions
from apps.pipeline import PIPELINE, Topology
from apps.scan.servers import free_port
from dedup import topics
from dedup.blob import BlobStore, open_service
from dedup.decisions import latest_decisions
from dedup.events import image_id
from dedup.runtime.kafka import Publisher, Record, read_topic
from dedup.synthetic import SampleFile, sample_set
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures
from dedup.v1.groups_pb2 import CandidateGroup
from dedup.vectors import open_milvus
from services.embedder.settings import EmbedderSettings
from services.hasher.settings import HasherSettings
from services.ingest.settings import IngestSettings
from services.matcher.settings import MatcherSettings
from services.ranker.settings import RankerSettings
from services.verifier.settings import VerifierSettings
from tests.faults.stack import ACCOUNT, ROOT, PrivateStack
from tests.support.clusters import partition

SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "hasher": HasherSettings,
    "verifier": VerifierSettings,
    "embedder": EmbedderSettings,
    "matcher": MatcherSettings,
    "ranker": RankerSettings,
}
UPLOAD_WAVES = 8
WAVE_SECONDS = 1.0
PATIENCE_SECONDS = 180.0
# Garbage that no protobuf parser accepts (field 0, wire type 7).
GARBAGE = b"\x07" * 16


def poison(stage: str) -> dict[str, bytes]:
    """key -> value of the poison for `stage`'s input: garbage, and a message that parses
    but breaks the schema's rules (its id is not its key; for a group, a negative width
    and a NaN quality: what the ranker once turned into a UNIQUE decision)."""
    broken: Message
    if stage == "hasher":
        broken = BlobEvent(image_id="someone-else", container="c", blob_name="b.jpg")
    else:
        image = ImageFeatures(image_id="someone-else", width=-5, height=10, quality=math.nan)
        broken = CandidateGroup(image_id="someone-else", image=image)
    return {f"poison-{stage}": GARBAGE, f"invalid-{stage}": broken.SerializeToString()}


def photos() -> list[SampleFile]:
    """The suite's images: 40 originals, half of them with 3 edited copies (100 files)."""
    return sample_set(40, 3, seed=11)


# ---- the processes ----------------------------------------------------------------------


@dataclass
class Proc:
    name: str  # "hasher", "hasher#2", "ingest"
    argv: list[str]
    env: dict[str, str]
    log: Path
    http_port: int | None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    crashes: int = 0  # exits nobody asked for

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=os.environ | self.env, stdout=out, stderr=out
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def retries(self) -> float:
        """dedup_retries_total of the running process (0 if it cannot be scraped)."""
        if self.http_port is None or not self.alive():
            return 0.0
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            if family.name == "dedup_retries"
            for s in family.samples
            if s.name == "dedup_retries_total"
        )


@dataclass
class Fleet:
    procs: list[Proc]
    _watching: asyncio.Task[None] | None = None

    def get(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    async def __aenter__(self) -> Fleet:
        for proc in self.procs:
            proc.start()
        self._watching = asyncio.create_task(self._supervise())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> dict[str, int]:
        """No more restarts; SIGTERM to all; their exit codes."""
        if self._watching:
            self._watching.cancel()
            self._watching = None
        return await asyncio.to_thread(self.stop_all)

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for proc in self.procs:
                if not proc.alive():
                    proc.crashes += 1
                    await asyncio.sleep(1)  # as a kubelet would, if briefly
                    proc.start()

    async def kill_and_restart(self, name: str) -> None:
        proc = self.get(name)
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.popen.wait)
        proc.start()

    def stop_all(self, timeout: float = 90) -> dict[str, int]:
        """SIGTERM to all, then their exit codes."""
        live = [p for p in self.procs if p.popen is not None and p.popen.poll() is None]
        for proc in live:
            assert proc.popen is not None
            proc.popen.send_signal(signal.SIGTERM)
        codes = {}
        for proc in self.procs:
            assert proc.popen is not None
            try:
                codes[proc.name] = proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                codes[proc.name] = -9
        return codes


def service_proc(
    stack: PrivateStack, stage: str, topology: Topology, logs: Path, replica: int
) -> Proc:
    name = stage if replica == 1 else f"{stage}#{replica}"
    port = free_port()
    env = (
        stack.service_env(stage, set(SETTINGS[stage].model_fields))
        | topology.env[stage]
        | {
            f"DEDUP_{stage.upper()}_HTTP_PORT": str(port),
            f"DEDUP_{stage.upper()}_LOG_LEVEL": "INFO",
        }
    )
    return Proc(name, [sys.executable, "-m", f"services.{stage}"], env, logs / f"{name}.log", port)


def ingest_proc(
    stack: PrivateStack, container: str, topology: Topology, logs: Path, state: Path
) -> Proc:
    env = stack.service_env("ingest", set(IngestSettings.model_fields))
    argv = [sys.executable, "-m", "apps.cli", "ingest", "watch", "--container", container,
            "--topic", topology.events, "--state", str(state), "--interval", "0.5"]  # fmt: skip
    return Proc("ingest", argv, env, logs / "ingest.log", None)


# ---- a case -------------------------------------------------------------------------------


@dataclass
class Watch:
    """What a running case can look at: how far each topic has got, for our images."""

    stack: PrivateStack
    topology: Topology
    ids: set[str]
    fleet: Fleet
    fault_times: tuple[float, float] | None = None  # monotonic: when it began, when it was over

    async def count(self, topic: str) -> int:
        """Our images with at least one record on `topic` (0 while Kafka is away)."""
        try:
            return len({r.key async for r in read_topic(self.stack.kafka, topic, idle_seconds=0.3)}
                       & self.ids)  # fmt: skip
        except (KafkaError, OSError):
            return 0

    async def until(self, topic: str, at_least: int) -> None:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while await self.count(topic) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: fewer than {at_least} of our images")
            await asyncio.sleep(0.3)


# A fault: waits for its moment, does its harm, returns when the harm is over.
Inject = Callable[[Watch], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    inject: Inject | None = None
    replicas: int = 1  # of every stage but the ranker
    poison: bool = False


@dataclass
class Outcome:
    case: Case
    files: list[SampleFile]
    ids: dict[str, str]  # image id -> file name
    decisions: dict[str, Decision]
    wall_seconds: float
    fault_at: float | None  # seconds from the start
    fault_over: float | None
    all_decided: float | None
    crashes: dict[str, int]
    exit_codes: dict[str, int]
    retries: float
    duplicates: dict[str, int]  # topic -> our images with more than one record there
    dead_letters: dict[str, list[Record]]  # input topic -> its DLQ records
    log_lines: dict[str, int]
    log_dir: Path

    def clusters(self) -> set[frozenset[str]]:
        """The images grouped by cluster (a unique image is a cluster of its own)."""
        mine = {k: d for k, d in self.decisions.items() if k in self.ids}
        return partition({self.ids[k]: d.cluster_id or k for k, d in mine.items()})

    def kept(self) -> dict[str, str]:
        """Each duplicate's name -> the name of the copy kept in its place."""
        return {
            self.ids[k]: self.ids.get(d.duplicate_of, d.duplicate_of)
            for k, d in self.decisions.items()
            if k in self.ids and d.duplicate_of
        }

    @property
    def recovery_seconds(self) -> float | None:
        if self.fault_over is None or self.all_decided is None:
            return None
        return max(0.0, self.all_decided - self.fault_over)


async def upload_in_waves(stack: PrivateStack, container: str, files: list[SampleFile]) -> None:
    """The user's uploads, a wave a second; an upload that fails (Azurite away) is retried
    for as long as the case's patience lasts."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    async with open_service(stack.blob) as service:
        store = BlobStore(service, "faults")
        await store.ensure_container(container)
        size = -(-len(files) // UPLOAD_WAVES)
        for start in range(0, len(files), size):
            for f in files[start : start + size]:
                while True:
                    try:
                        await store.upload(container, f.name, f.data)
                        break
                    except Exception:  # the user retries whatever it was
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(1)
            await asyncio.sleep(WAVE_SECONDS)


async def decisions_of(stack: PrivateStack, topic: str, ids: set[str]) -> dict[str, Decision]:
    """The latest decisions of `ids`, or none while the broker is away (a fault)."""
    with contextlib.suppress(KafkaError, OSError):
        return await latest_decisions(stack.kafka, topic, wanted=ids, idle_seconds=0.3)
    return {}


async def records_per_key(stack: PrivateStack, topic: str, ids: set[str]) -> Counter[str]:
    return Counter([r.key async for r in read_topic(stack.kafka, topic, idle_seconds=0.5)
                    if r.key in ids])  # fmt: skip


async def publish_poison(stack: PrivateStack, topology: Topology) -> None:
    async with Publisher(stack.kafka) as publisher:
        for stage in PIPELINE:
            for key, value in poison(stage.name).items():
                await publisher.publish(topology.input_topic(stage), key, value)
        await publisher.flush()


async def run_case(stack: PrivateStack, case: Case, tag: str, logs: Path) -> Outcome:
    topology = Topology.private(tag)
    container = f"faults-{tag}"
    files = photos()
    ids = {image_id(ACCOUNT, container, f.name): f.name for f in files}
    shutil.rmtree(logs, ignore_errors=True)  # an earlier run's logs and watch state
    logs.mkdir(parents=True)
    procs = [ingest_proc(stack, container, topology, logs, logs / "watch.json")]
    for stage in PIPELINE:
        replicas = 1 if stage.name == "ranker" else case.replicas
        procs += [service_proc(stack, stage.name, topology, logs, n + 1) for n in range(replicas)]
    async with Publisher(stack.kafka) as publisher:  # the topics exist before anyone reads
        await publisher.ensure_topics(
            [topology.input_topic(s) for s in PIPELINE]
            + [topics.dead_letter(topology.input_topic(s)) for s in PIPELINE]
            + [topology.decisions]
        )
    started = time.monotonic()
    fault_at = fault_over = all_decided = None
    async with Fleet(procs) as fleet:
        watch = Watch(stack, topology, set(ids), fleet)
        uploads = asyncio.create_task(upload_in_waves(stack, container, files))
        if case.poison:
            await watch.until(topology.input_topic(PIPELINE[1]), len(ids) // 5)
            await publish_poison(stack, topology)
        if case.inject is not None:
            await case.inject(watch)
            if watch.fault_times is not None:
                fault_at, fault_over = (t - started for t in watch.fault_times)
        await uploads
        deadline = time.monotonic() + PATIENCE_SECONDS
        decisions: dict[str, Decision] = {}
        while time.monotonic() < deadline:
            decisions = await decisions_of(stack, topology.decisions, set(ids))
            if own_decisions(decisions) >= set(ids):
                all_decided = time.monotonic() - started
                break
            await asyncio.sleep(1)
        retries = sum(p.retries() for p in fleet.procs)
        crashes = {p.name: p.crashes for p in fleet.procs}
        exit_codes = await fleet.stop()
    wall = time.monotonic() - started
    decisions = await decisions_of(stack, topology.decisions, set(ids))
    duplicates = {}
    for topic in (topology.input_topic(s) for s in PIPELINE):  # events and the four between
        per_key = await records_per_key(stack, topic, set(ids))
        duplicates[topic] = sum(1 for n in per_key.values() if n > 1)
    dead: dict[str, list[Record]] = defaultdict(list)
    for stage in PIPELINE:
        topic = topology.input_topic(stage)
        dead[topic] = [r async for r in read_topic(stack.kafka, topics.dead_letter(topic),
                                                   idle_seconds=0.5)]  # fmt: skip
    await clean_up(stack, topology, container)
    lines = {p.log.stem: len(p.log.read_text(errors="replace").splitlines()) for p in procs}
    return Outcome(case, files, ids, decisions, wall, fault_at, fault_over, all_decided,
                   crashes, exit_codes, retries, duplicates, dict(dead), lines, logs)  # fmt: skip


async def clean_up(stack: PrivateStack, topology: Topology, container: str) -> None:
    async with open_service(stack.blob) as service:
        await service.delete_container(container)
        await service.delete_container(topology.env["hasher"]["DEDUP_HASHER_WORKING_CONTAINER"])
    milvus = open_milvus(stack.milvus)
    for stage, name in (("hasher", "DEDUP_HASHER_COLLECTION"),
                        ("embedder", "DEDUP_EMBEDDER_COLLECTION")):  # fmt: skip
        await milvus.drop_collection(topology.env[stage][name])
    await milvus.close()


# ---- the faults -----------------------------------------------------------------------------


def mark(watch: Watch, begun: float) -> None:
    watch.fault_times = (begun, time.monotonic())


def sigkill(stage: str, after_topic: Callable[[Topology], str], share: float = 0.3) -> Inject:
    """SIGKILL `stage` once `share` of the images are on `after_topic`, and restart it."""

    async def inject(watch: Watch) -> None:
        await watch.until(after_topic(watch.topology), int(len(watch.ids) * share))
        begun = time.monotonic()
        await watch.fleet.kill_and_restart(stage)
        mark(watch, begun)

    return inject


def away(part: str, seconds: float) -> Inject:
    """Stop a part of the stack for `seconds` once the hasher is a third through."""

    async def inject(watch: Watch) -> None:
        hashed = watch.topology.output_topic(PIPELINE[0])
        await watch.until(hashed, len(watch.ids) // 3)
        begun = time.monotonic()
        await asyncio.to_thread(watch.stack.down, part)
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - begun)))
        await asyncio.to_thread(watch.stack.up, part)
        mark(watch, begun)

    return inject


def output_of(stage: str) -> Callable[[Topology], str]:
    info = next(s for s in PIPELINE if s.name == stage)
    return lambda topology: topology.output_topic(info)


def stage_outputs() -> Mapping[str, Callable[[Topology], str]]:
    outputs = {s.name: output_of(s.name) for s in PIPELINE}
    outputs["ingest"] = lambda topology: topology.events
    return outputs
