"""Flat memory: each service's resident memory as the images it has seen grow.

Each service runs alone in a fresh process of its own (this module with `--worker`), its
real handler opened as its stage opens it (`open_hasher`, the verifier's and the
matcher's `open_stage`, `open_embedder`, `ranker_stage`) and fed one image after the
other, `concurrency` at once as the runtime does (the ranker one at a time). Only what
lies outside the process is stood in for:

- blob storage: a pool of `--pool` generated photos (`--side` px, JPEG) read by name;
  uploads are dropped (the storage's memory is not the service's);
- the indexes (Milvus in the services): the in-memory indexes of `dedup scan`, kept at
  the last `--window` images by deleting the image that leaves the window through the
  handler (a BlobDeleted event, a DELETED group), so the searches find real neighbours
  but the index does not grow in this process (Milvus's growth: bench/milvus_growth.py);
- Triton: a stand-in client (its metadata, and a 512-d vector per image from its
  pixels) under the embedder's real `TritonEmbedder` and its micro-batcher.

The groups the later stages get are the hasher's real outputs of the pool's photos
(made first, in a process of their own), renamed for each image: image i is the pool's
photo i % pool, so it has an exact copy `pool` images earlier (a hash candidate at PDQ
distance 0) and a different photo just before it (a candidate to reject). The ranker's
groups prove a DUPLICATE for one image in 10 and a SIMILAR for one in 20, so its
clusters stay small.

At each checkpoint (images seen): VmRSS after a garbage collection, less tracemalloc's
own memory when tracing; what Python allocated (tracemalloc); each bounded cache's
bytes. At the end, tracemalloc's largest growth from the first checkpoint to the last,
by line.

    .venv/bin/python -m bench.memory_growth [--images 10000] [--services hasher,ranker]
        [--checkpoints 1000,2000,5000,10000] [--window 1000] [--trace] [--json OUT]
    .venv/bin/python -m bench.memory_growth --images 100000   # the issue's range
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import pickle
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

SERVICES = ("hasher", "verifier", "embedder", "matcher", "ranker")
ACCOUNT = "devstoreaccount1"
ACCOUNT_URL = f"http://127.0.0.1:10000/{ACCOUNT}"
UPLOADS = "uploads"
WORKING = "dedup-working"
EMBEDDING_DIM = 512  # sscd_distilled's
MODEL_SIDE = 320
DUPLICATE_EVERY = 10  # the ranker's groups: one image in 10 proves a DUPLICATE...
SIMILAR_EVERY = 20  # ...and one in 20 a SIMILAR
TOP_GROWTH = 6


# ---- what one image is ---------------------------------------------------------------------


def image_id(n: int) -> str:
    """Image n's id: 32 hex digits as the real ones (a hash), n readable back from it."""
    return f"{n:032x}"


def number_of(blob_name: str) -> int:
    """n from `bench/<n>.jpg` (an original) or `<image id>.jpg` (a working copy)."""
    stem = blob_name.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem, 16) if len(stem) == 32 else int(stem)


def blob_name(n: int) -> str:
    return f"bench/{n:08d}.jpg"


def working_url(n: int) -> str:
    return f"{ACCOUNT_URL}/{WORKING}/{image_id(n)}.jpg"


def e_tag(n: int) -> str:
    return f'"0x8DD{n:013X}"'


class PoolBlobs:
    """Blob storage of a fixed pool: blob n (original or working copy) is photo n % pool."""

    def __init__(self, pool: Sequence[bytes]) -> None:
        self._pool = pool

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        return self._pool[number_of(name) % len(self._pool)]

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = "image/jpeg"
    ) -> str:
        return f"{ACCOUNT_URL}/{container}/{name}"

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None:
        return None

    def locate(self, url: str) -> tuple[str, str] | None:
        container, _, name = url.removeprefix(f"{ACCOUNT_URL}/").partition("/")
        return (container, name) if name else None

    async def ensure_container(self, container: str) -> None:
        return None


def created(n: int, size: int) -> Any:
    """Image n's BlobCreated, as a listing makes it."""
    from dedup.blob import BlobInfo
    from dedup.events import created_from_listing

    info = BlobInfo(blob_name(n), size, e_tag(n), "image/jpeg", 1_764_000_000.0 + n)
    event = created_from_listing(ACCOUNT, ACCOUNT_URL, UPLOADS, info)
    event.image_id = image_id(n)
    return event


def deleted(n: int) -> Any:
    from dedup.events import BLOB_DELETED

    event = created(n, 0)
    event.event_type = BLOB_DELETED
    return event


# ---- the pool and the hasher's groups of it ------------------------------------------------


@dataclass
class Templates:
    """The pool's photos (originals), their working copies and the hasher's groups."""

    originals: list[bytes]
    working: list[bytes]
    groups: list[bytes]  # serialised CandidateGroup, without candidates


def make_pool(count: int, side: int) -> list[bytes]:
    from dedup import synthetic

    size = (side, side * 3 // 4)
    return [synthetic.encode(synthetic.photo(70_000 + k, size), quality=90) for k in range(count)]


class KeptUploads(PoolBlobs):
    """As PoolBlobs, keeping what is uploaded (the working copies of the pool)."""

    def __init__(self, pool: Sequence[bytes]) -> None:
        super().__init__(pool)
        self.uploaded: dict[str, bytes] = {}

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = "image/jpeg"
    ) -> str:
        self.uploaded[name] = data
        return await super().upload(container, name, data, content_type)


async def make_templates(pool: int, side: int) -> Templates:
    from services.hasher.handler import working_copy_name
    from services.hasher.settings import HasherSettings
    from services.hasher.stage import open_hasher

    originals = make_pool(pool, side)
    blobs = KeptUploads(originals)
    groups = []
    async with open_hasher(HasherSettings(), blobs, in_memory=True) as hasher:
        for n in range(pool):
            (output,) = await hasher.handle(created(n, len(originals[n])), search=False)
            groups.append(output.message.SerializeToString())
    working = [blobs.uploaded[working_copy_name(image_id(n))] for n in range(pool)]
    return Templates(originals, working, groups)


def renamed(templates: Templates, n: int) -> Any:
    """Image n's group as the hasher made it (the pool's photo n % pool), no candidates."""
    from dedup.v1.groups_pb2 import CandidateGroup

    group = CandidateGroup.FromString(templates.groups[n % len(templates.groups)])
    event = created(n, group.image.size_bytes)
    group.image_id = group.image.image_id = image_id(n)
    group.event.CopyFrom(event)
    group.image.blob_url = event.data.url
    group.image.e_tag = event.data.e_tag
    group.image.working_copy_url = working_url(n)
    return group


def candidate_of(templates: Templates, n: int, new: int) -> Any:
    """Image n as a hash candidate of image `new` (the hasher's fields)."""
    from dedup.v1.groups_pb2 import Candidate, CandidateSource, Scores, Verdict

    image = renamed(templates, n).image
    same = n % len(templates.groups) == new % len(templates.groups)
    return Candidate(
        image_id=image.image_id,
        blob_url=image.blob_url,
        source=CandidateSource.CANDIDATE_SOURCE_HASH,
        verdict=Verdict.VERDICT_PENDING,
        scores=Scores(
            pdq_distance=0 if same else 70, wavelet_distance=0 if same else 20, pdq_transform=0
        ),
        quality=image.quality,
        colour_signature=image.colour_signature,
        greyscale=image.greyscale,
        working_copy_url=image.working_copy_url,
        e_tag=image.e_tag,
    )


def hashed(templates: Templates, n: int) -> Any:
    """Image n's group with its two hash candidates: its exact copy `pool` images earlier
    and the different photo just before it."""
    group = renamed(templates, n)
    pool = len(templates.groups)
    group.candidates.extend(candidate_of(templates, m, n) for m in (n - pool, n - 1) if m >= 0)
    return group


def matched(templates: Templates, n: int) -> Any:
    """Image n's group as the matcher passes it on: the photo before it rejected; one
    image in 10 a DUPLICATE of its copy, one in 20 SIMILAR to it."""
    from dedup.v1.groups_pb2 import Verdict

    group = hashed(templates, n)
    for c in group.candidates:
        c.decided_by, c.verdict = "matcher", Verdict.VERDICT_REJECTED
        c.test, c.reason = "inliers", "12 inliers < 25"
        if c.scores.pdq_distance == 0 and n % DUPLICATE_EVERY == 0:
            c.verdict, c.test, c.reason = Verdict.VERDICT_DUPLICATE, "aligned", "residual 0.01"
        elif c.scores.pdq_distance == 0 and n % SIMILAR_EVERY == 5:
            c.verdict, c.test, c.reason = Verdict.VERDICT_SIMILAR, "flow", "0.2 displaced"
        c.scores.inliers, c.scores.aligned_residual = 120, 0.01
    for stage in ("verifier", "embedder", "matcher"):
        group.stages.append(stage)
    return group


def leaving(templates: Templates, n: int) -> Any:
    """The DELETED group that takes image n out of an index."""
    from dedup.v1.features_pb2 import ImageStatus

    group = renamed(templates, n)
    group.image.status = ImageStatus.IMAGE_STATUS_DELETED
    return group


# ---- the stand-in for Triton --------------------------------------------------------------


class PixelTriton:
    """What `TritonEmbedder` asks of a Triton client: the model's metadata, and for each
    image a unit vector from its pixels (the same pixels, the same vector)."""

    def __init__(self, url: str = "", *args: object, **kwargs: object) -> None:
        self._url = url

    async def get_model_metadata(self, model: str, **kwargs: object) -> dict[str, Any]:
        return {
            "name": model,
            "inputs": [
                {"name": "image", "datatype": "UINT8", "shape": [-1, MODEL_SIDE, MODEL_SIDE, 3]}
            ],
            "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, EMBEDDING_DIM]}],
        }

    async def get_model_config(self, model: str, **kwargs: object) -> dict[str, Any]:
        return {"config": {"max_batch_size": 32}}

    async def infer(self, model: str, inputs: Sequence[Any], **kwargs: object) -> Any:
        (request,) = inputs
        pixels = np.frombuffer(request._get_content(), np.uint8).astype(np.float32)
        rows = pixels.reshape(request.shape()[0], EMBEDDING_DIM, -1).mean(axis=2)
        rows -= rows.mean(axis=1, keepdims=True)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True) + 1e-6
        return _Result(rows.astype(np.float32))

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def patched(module: object, name: str, value: object) -> AsyncIterator[None]:
    """`module.name` is `value` inside the block (the embedder's Triton client class)."""
    with mock.patch.object(module, name, value):
        yield


@dataclass
class _Result:
    vectors: np.ndarray

    def as_numpy(self, name: str) -> np.ndarray:
        return self.vectors


# ---- the drivers: one per service -----------------------------------------------------------


@dataclass
class Driver:
    """Feeds a service image n (`feed`); `state` reports its bounded caches."""

    feed: Callable[[int], Awaitable[None]]
    concurrency: int
    state: Callable[[], dict[str, int]] = field(default=lambda: {})


async def drain(outputs: Awaitable[Sequence[Any]]) -> None:
    """Handle and drop the outputs (the runtime publishes them; nothing is kept here)."""
    await outputs


@contextlib.asynccontextmanager
async def hasher_driver(templates: Templates, window: int) -> AsyncIterator[Driver]:
    from services.hasher.settings import HasherSettings
    from services.hasher.stage import count_images, open_hasher

    settings = HasherSettings()
    async with open_hasher(settings, PoolBlobs(templates.originals), in_memory=True) as hasher:

        async def feed(n: int) -> None:
            size = len(templates.originals[n % len(templates.originals)])
            count_images(await hasher.handle(created(n, size)))
            if n >= window:
                await hasher.handle(deleted(n - window))

        yield Driver(feed, settings.concurrency)


@contextlib.asynccontextmanager
async def verifier_driver(templates: Templates, window: int) -> AsyncIterator[Driver]:
    from services.verifier.settings import VerifierSettings
    from services.verifier.stage import open_stage

    settings = VerifierSettings()
    async with open_stage(settings) as stage:

        async def feed(n: int) -> None:
            await drain(stage.handle(hashed(templates, n)))

        yield Driver(feed, settings.concurrency)


@contextlib.asynccontextmanager
async def embedder_driver(templates: Templates, window: int) -> AsyncIterator[Driver]:
    from services.embedder import stage as embedder_stage
    from services.embedder.settings import EmbedderSettings

    settings = EmbedderSettings()
    blobs = PoolBlobs(templates.working)
    async with (
        patched(embedder_stage, "InferenceServerClient", PixelTriton),
        embedder_stage.open_embedder(settings, blobs, in_memory=True) as embedder,
    ):

        async def feed(n: int) -> None:
            await drain(embedder.handle(hashed(templates, n)))
            if n >= window:
                await drain(embedder.handle(leaving(templates, n - window)))

        yield Driver(feed, settings.concurrency)


@contextlib.asynccontextmanager
async def matcher_driver(templates: Templates, window: int) -> AsyncIterator[Driver]:
    from services.matcher.settings import MatcherSettings
    from services.matcher.stage import matcher_of, working_copy_reader

    settings = MatcherSettings()
    fetch = working_copy_reader(PoolBlobs(templates.working), settings.working_copy_max_bytes)
    matcher = matcher_of(settings, fetch)

    async def feed(n: int) -> None:
        await drain(matcher.handle(hashed(templates, n)))

    def state() -> dict[str, int]:
        return {
            "view cache bytes": matcher.cache.nbytes,
            "views": len(matcher.cache),
            "pair cache bytes": matcher.pairs.nbytes,
            "pairs": len(matcher.pairs),
        }

    yield Driver(feed, settings.concurrency, state)


@contextlib.asynccontextmanager
async def ranker_driver(templates: Templates, window: int) -> AsyncIterator[Driver]:
    from services.ranker.settings import RankerSettings
    from services.ranker.stage import opened_ranker, ranker_stage

    with opened_ranker(RankerSettings()) as ranker:
        stage = ranker_stage(ranker)

        async def feed(n: int) -> None:
            await drain(stage.handle(matched(templates, n)))

        def state() -> dict[str, int]:
            held = getattr(ranker.cards, "nbytes", None)  # SpilledCards: the recent ones
            cards = {} if held is None else {"cards in memory bytes": held}
            return {"images": len(ranker), "linked": ranker.linked, **cards}

        yield Driver(feed, 1, state)


DRIVERS = {
    "hasher": hasher_driver,
    "verifier": verifier_driver,
    "embedder": embedder_driver,
    "matcher": matcher_driver,
    "ranker": ranker_driver,
}


# ---- measuring -------------------------------------------------------------------------


def rss_bytes() -> int:
    """VmRSS of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def checkpoint(seen: int, started: float, driver: Driver) -> dict[str, Any]:
    gc.collect()
    tracing = tracemalloc.is_tracing()
    overhead = tracemalloc.get_tracemalloc_memory() if tracing else 0
    return {
        "images": seen,
        "rss": rss_bytes() - overhead,
        "traced": tracemalloc.get_traced_memory()[0] if tracing else None,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time(),
        "state": driver.state(),
    }


def top_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> list[str]:
    here = tracemalloc.Filter(False, __file__)
    stats = last.filter_traces([here]).compare_to(first.filter_traces([here]), "lineno")
    return [str(s) for s in stats[:TOP_GROWTH]]


async def run_worker(
    service: str, templates: Templates, checkpoints: Sequence[int], window: int
) -> None:
    """Feed the service up to each checkpoint in turn; print each checkpoint's figures."""
    first: tracemalloc.Snapshot | None = None
    async with DRIVERS[service](templates, window) as driver:
        started = time.perf_counter()
        n = 0
        for mark in checkpoints:
            while n < mark:
                batch = range(n, min(mark, n + driver.concurrency))
                await asyncio.gather(*(driver.feed(i) for i in batch))
                n = batch.stop
            point = checkpoint(n, started, driver)
            print(json.dumps({"service": service, **point}), flush=True)
            if tracemalloc.is_tracing():
                if first is None:
                    first = tracemalloc.take_snapshot()
                elif mark == checkpoints[-1]:
                    growth = top_growth(first, tracemalloc.take_snapshot())
                    print(json.dumps({"service": service, "growth": growth}), flush=True)


def worker(args: argparse.Namespace) -> int:
    from dedup.memory import return_large_blocks

    return_large_blocks()  # as every service's main does, before any thread starts
    with open(args.templates, "rb") as f:
        templates: Templates = pickle.load(f)  # noqa: S301 (written by this run's parent)
    if args.trace:
        tracemalloc.start(1)
    asyncio.run(run_worker(args.worker, templates, args.checkpoints, args.window))
    return 0


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Row:
    service: str
    points: list[dict[str, Any]] = field(default_factory=list)
    growth: list[str] = field(default_factory=list)
    error: str = ""


def run_service(service: str, args: argparse.Namespace, templates: Path) -> Row:
    command = [
        sys.executable, "-m", "bench.memory_growth", "--worker", service,
        "--templates", str(templates), "--images", str(args.images),
        "--checkpoints", ",".join(map(str, args.checkpoints)), "--window", str(args.window),
        *(["--trace"] if args.trace else []),
    ]  # fmt: skip
    row = Row(service)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            record = json.loads(line)
            if "growth" in record:
                row.growth = record["growth"]
            else:
                row.points.append(record)
                print(progress(record), file=sys.stderr, flush=True)
    if process.returncode:
        row.error = f"exit {process.returncode}"
    return row


def progress(point: dict[str, Any]) -> str:
    state = ", ".join(f"{k} {v}" for k, v in point["state"].items())
    traced = "" if point["traced"] is None else f", traced {point['traced'] / 1e6:.1f} MB"
    return (
        f"  {point['service']:8s} {point['images']:>7d} images: RSS {point['rss'] / 1e6:.1f} MB"
        f"{traced}, {point['seconds']:.0f} s{', ' + state if state else ''}"
    )


def table(rows: Sequence[Row], checkpoints: Sequence[int]) -> str:
    head = f"{'service':9s}" + "".join(f"{n:>9d}" for n in checkpoints)
    lines = [f"RSS MB by images seen; growth from {checkpoints[0]:,}", head + "   growth"]
    for row in rows:
        rss = {p["images"]: p["rss"] / 1e6 for p in row.points}
        cells = "".join(f"{rss[n]:9.1f}" if n in rss else f"{'-':>9s}" for n in checkpoints)
        last = max(rss) if rss else None
        growth = (
            f"{100 * (rss[last] / rss[checkpoints[0]] - 1):+8.1f} %"
            if last is not None and checkpoints[0] in rss
            else ""
        )
        lines.append(f"{row.service:9s}{cells}{growth}{'  ' + row.error if row.error else ''}")
    return "\n".join(lines)


def per_image(row: Row) -> str:
    """Python's allocations and CPU per image from the first checkpoint to the last."""
    if len(row.points) < 2 or row.points[0]["traced"] is None:
        return ""
    a, b = row.points[0], row.points[-1]
    images = b["images"] - a["images"]
    traced = (b["traced"] - a["traced"]) / images
    cpu = 1000 * (b["cpu"] - a["cpu"]) / images
    return f"{row.service}: traced {traced:+.0f} B/image, CPU {cpu:.1f} ms/image"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", default=",".join(SERVICES))
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument(
        "--checkpoints", default="", help="default: 1k, 2k, 5k, 10k, ... up to --images"
    )
    parser.add_argument(
        "--window", type=int, default=1000, help="images kept in the stand-in indexes"
    )
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--side", type=int, default=160, help="the pool's photos' longer side")
    parser.add_argument(
        "--trace", action="store_true", help="tracemalloc: what Python allocated, and where it grew"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=SERVICES, help=argparse.SUPPRESS)
    parser.add_argument("--templates", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.checkpoints = (
        [int(c) for c in args.checkpoints.split(",")]
        if args.checkpoints
        else default_checkpoints(args.images)
    )
    return args


def default_checkpoints(images: int) -> list[int]:
    marks = [m * 10**e for e in range(3, 7) for m in (1, 2, 5) if m * 10**e < images]
    return [*marks, images]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    print("$ python -m bench.memory_growth " + " ".join(sys.argv[1:]), flush=True)
    services = [s for s in args.services.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="memory-growth-") as folder:
        templates = Path(folder, "templates.pickle")
        with open(templates, "wb") as f:
            pickle.dump(asyncio.run(make_templates(args.pool, args.side)), f)
        rows = [run_service(s, args, templates) for s in services]
    print(table(rows, args.checkpoints))
    for row in rows:
        if line := per_image(row):
            print(line)
        for stat in row.growth:
            print(f"  {row.service} grew: {stat}")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
