"""The growth table: what one image costs Milvus as the collections grow.

For each size (10k, 100k, 1M stored images by default) a fresh, private Milvus Lite (the
stack's server binary, on its own port and data folder) is filled with synthetic records
of the real widths through the services' own index code:

- the hasher's collection (`services.hasher.milvus_index`): two 256-bit binary vectors
  (PDQ, wavelet) and the scalars a candidate carries;
- the embedder's (`services.embedder.milvus_index`): one FLOAT_VECTOR of the default
  model's width (512, `sscd_distilled`) and its scalars.

Among the random records are planted neighbours of the query images: per query, PDQ
hashes at Hamming distances within the PDQ radius (one of them near a turned variant,
which only the search of that variant finds), a wavelet hash within the wavelet radius,
and embeddings at cosine 0.40-0.95 (random 512-d vectors meet at |cos| < 0.25). They are
spread over the fill, not put at its end. Then `--images` images go one at a time, as
the services send them:

- hash: `MilvusHashIndex.add_and_search` (upsert, one range search with the 8 PDQ
  variants, one with the wavelet hash);
- embedding: `MilvusEmbeddingIndex.upsert` and then `search` (10 neighbours).

Printed per size and kind: Milvus CPU per image (its process's utime + stime from
/proc, over the whole loop, divided by the images), p50/p95 wall time per image, Milvus
RSS after the loop, and recall against a flat search: the share of the candidates an
exact search finds (every stored hash within the radii; every stored embedding at or
above the embedder's add threshold, 0.40) that the index returned. The exact search is
numpy over the very vectors stored (np.bitwise_count over the hashes, a matrix product
over the embeddings), not a second Milvus query.

    nice -n 10 .venv/bin/python bench/milvus_growth.py [--sizes 10000,100000,1000000]
        [--float-sizes ...] [--images 200] [--embedding-index IVF_FLAT] [--port 29150]
        [--flush-rows 0] [--flush-seconds 0]

--float-sizes (default: --sizes) limits the embedding collection where 1M float
vectors do not fit; the hash collection is always filled to each size.

Milvus Lite searches flat whatever index is asked for. `--server standalone` measures
the indexes themselves on a Milvus 2.3 standalone server (`make bench-milvus`; each
component on a port after --port): the fill is flushed and the index built before the
images go. Milvus 2.3 holds one vector field per collection, so only the embedder's
collection runs there (`--kinds embedding`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs")]

from bench.proctree import ProcStat, all_stats, descendants, kill_tree, read_stat  # noqa: E402

if TYPE_CHECKING:
    from dedup.vectors import FlushPolicy

RUN = ROOT / ".run" / "bench" / "milvus-growth"
HASH_BYTES = 32
EMBEDDING_DIM = 512  # sscd_distilled (services/embedder/models/README.md)
PDQ_RADIUS, WAVELET_RADIUS, MAX_CANDIDATES = 80, 28, 32  # the hasher's defaults
ADD_THRESHOLD, NEIGHBOURS = 0.40, 10  # the embedder's defaults
VARIANTS = 8  # PDQ of the 8 turns and flips
# Rows per insert of the fill: Milvus Lite takes ~40 times longer per row once one insert
# of 512-d rows reaches 4,000 rows (~8 MB; measured: 0.15 ms of its CPU per row at 2,000,
# 6 ms at 4,000).
FILL_BATCH = 1000


# ---- a private Milvus Lite ----------------------------------------------------------------


def milvus_lite_lib() -> Path:
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None or spec.origin is None:
        raise SystemExit("milvus-lite is not installed (make venv)")
    return Path(spec.origin).parent / "lib"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Server:
    """How to run one kind of Milvus server: its command, and how it starts and stops."""

    name: str
    command: list[str]
    ports: range  # every port it listens on; the first serves gRPC
    env: dict[str, str] | None = None
    start_seconds: float = 60
    stop_signal: signal.Signals = signal.SIGTERM


@contextmanager
def serving(server: Server, folder: Path) -> Iterator[int]:
    """`server` started afresh with its data in `folder`, until its gRPC port answers;
    its pid. Stopped, its processes killed and `folder` removed at the end."""
    taken = [p for p in server.ports if port_open(p)]
    if taken:
        raise SystemExit(f"ports {taken} are taken: pass another --port")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server.command, env=server.env, stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )
    try:
        deadline = time.monotonic() + server.start_seconds
        while not port_open(server.ports[0]):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{server.name} did not start (see {log_path})")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.send_signal(server.stop_signal)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        kill_tree(process.pid)
        shutil.rmtree(folder, ignore_errors=True)


def milvus_lite(folder: Path, port: int) -> Server:
    """Milvus Lite serving gRPC on 127.0.0.1:`port`, its data in `folder`."""
    lib = milvus_lite_lib()
    return Server(
        "Milvus Lite",
        [str(lib / "milvus"), str(folder / "milvus.db"), f"127.0.0.1:{port}", "ERROR"],
        range(port, port + 1),
        env=os.environ | {"LD_LIBRARY_PATH": str(lib)},
    )


# The standalone server's components, each on a port of its own after the proxy's.
STANDALONE_PORTS = (
    "etcd_port",
    "root_coord_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)


def milvus_standalone(folder: Path, port: int, launcher: Path) -> Server:
    """Milvus standalone (PyPI `milvus`: the server a cluster runs, with its indexes, and
    etcd embedded) serving gRPC on `port`, its other components on the next ports; the
    pid is the launcher's (the server is its child). Milvus 2.3's gRPC servers bind every
    address: run it on a machine that takes no outside connections."""
    if not launcher.exists():
        raise SystemExit(f"{launcher} is missing: make bench-milvus")
    ports = [f"--{n.replace('_', '-')}={port + 1 + i}" for i, n in enumerate(STANDALONE_PORTS)]
    return Server(
        "Milvus standalone",
        [str(launcher), "--data", str(folder), f"--proxy-port={port}", *ports],
        range(port, port + len(STANDALONE_PORTS) + 1),
        start_seconds=180,
        stop_signal=signal.SIGINT,  # what the launcher stops on
    )


def milvus_server(args: argparse.Namespace, size: int) -> AbstractContextManager[int]:
    folder = RUN / args.server / str(size)
    if args.server == "standalone":
        return serving(milvus_standalone(folder, args.port, args.launcher), folder)
    return serving(milvus_lite(folder, args.port), folder)


def tree(pid: int) -> list[ProcStat]:
    """`pid` and every process below it (the standalone server is the launcher's child)."""
    own = read_stat(pid)
    return ([own] if own else []) + descendants(pid, all_stats())


def cpu_seconds(pid: int) -> float:
    stats = tree(pid)
    return sum(s.cpu_seconds for s in stats) if stats else float("nan")


def rss_bytes(pid: int) -> int:
    """The resident memory of `pid` and every process below it."""
    return sum(s.rss_bytes for s in tree(pid))


# ---- synthetic data -----------------------------------------------------------------------


def flip_bits(rng: np.random.Generator, vector: bytes, bits: int) -> bytes:
    """`vector` with `bits` distinct bits flipped: at Hamming distance exactly `bits`."""
    as_bits = np.unpackbits(np.frombuffer(vector, np.uint8))
    at = rng.choice(as_bits.size, size=bits, replace=False)
    as_bits[at] ^= 1
    return np.packbits(as_bits).tobytes()


@dataclass
class HashData:
    ids: list[str]
    pdq: npt.NDArray[np.uint8]  # (n, 32)
    wavelet: npt.NDArray[np.uint8]
    queries: list[tuple[bytes, tuple[bytes, ...]]]  # (wavelet, pdq variants), query i


def hash_data(rng: np.random.Generator, size: int, images: int) -> HashData:
    pdq = rng.integers(0, 256, (size, HASH_BYTES), dtype=np.uint8)
    wavelet = rng.integers(0, 256, (size, HASH_BYTES), dtype=np.uint8)
    # Four planted records per query, at spread-out rows: two near its PDQ (one at the
    # radius itself), one near its 4th PDQ variant, one near its wavelet hash.
    planted = rng.choice(size, size=4 * images, replace=False).reshape(images, 4)
    queries = []
    for i in range(images):
        variants = tuple(rng.bytes(HASH_BYTES) for _ in range(VARIANTS))
        own_wavelet = rng.bytes(HASH_BYTES)
        a, b, c, d = planted[i]
        pdq[a] = np.frombuffer(flip_bits(rng, variants[0], int(rng.integers(0, 40))), np.uint8)
        pdq[b] = np.frombuffer(flip_bits(rng, variants[0], PDQ_RADIUS), np.uint8)
        turned = flip_bits(rng, variants[3], int(rng.integers(0, PDQ_RADIUS)))
        pdq[c] = np.frombuffer(turned, np.uint8)
        wavelet[d] = np.frombuffer(
            flip_bits(rng, own_wavelet, int(rng.integers(0, WAVELET_RADIUS + 1))), np.uint8
        )
        queries.append((own_wavelet, variants))
    return HashData([f"h{i:08d}" for i in range(size)], pdq, wavelet, queries)


def unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(matrix / np.linalg.norm(matrix, axis=1, keepdims=True), np.float32)


@dataclass
class EmbeddingData:
    ids: list[str]
    vectors: npt.NDArray[np.float32]  # (n, dim), unit rows
    queries: npt.NDArray[np.float32]  # (images, dim), unit rows


def embedding_data(rng: np.random.Generator, size: int, images: int) -> EmbeddingData:
    vectors = np.empty((size, EMBEDDING_DIM), np.float32)
    for at in range(0, size, 100_000):  # in slices: no float64 copy of it all
        part = rng.standard_normal((min(100_000, size - at), EMBEDDING_DIM), dtype=np.float32)
        vectors[at : at + len(part)] = unit_rows(part)
    queries = unit_rows(rng.standard_normal((images, EMBEDDING_DIM), dtype=np.float32))
    # Three planted neighbours per query, at cosine 0.40-0.95, at spread-out rows.
    planted = rng.choice(size, size=3 * images, replace=False).reshape(images, 3)
    for i in range(images):
        for row in planted[i]:
            cosine = rng.uniform(ADD_THRESHOLD + 0.005, 0.95)
            noise = rng.standard_normal(EMBEDDING_DIM).astype(np.float32)
            noise -= noise.dot(queries[i]) * queries[i]
            noise /= np.linalg.norm(noise)
            vectors[row] = cosine * queries[i] + np.sqrt(1 - cosine**2) * noise
    return EmbeddingData([f"e{i:08d}" for i in range(size)], vectors, queries)


# ---- the exact ("flat") searches ----------------------------------------------------------


def within(stored: npt.NDArray[np.uint64], query: bytes, radius: int) -> set[int]:
    distance = np.bitwise_count(stored ^ np.frombuffer(query, np.uint64)).sum(axis=1)
    near = np.flatnonzero(distance <= radius)
    return set(near[np.argsort(distance[near], kind="stable")][:MAX_CANDIDATES].tolist())


def recall(found: Sequence[set[str]], truth: Sequence[set[str]]) -> tuple[float, int]:
    expected = sum(len(t) for t in truth)
    hit = sum(len(t & f) for f, t in zip(found, truth, strict=True))
    return (hit / expected if expected else float("nan")), expected


# ---- the measurements ---------------------------------------------------------------------


@dataclass
class Row:
    kind: str
    size: int
    fill_seconds: float
    cpu_ms: float
    p50_ms: float
    p95_ms: float
    rss_mb: float
    recall: float
    expected: int


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def measure_hashes(args: argparse.Namespace, pid: int, port: int, size: int) -> Row:
    from pymilvus import AsyncMilvusClient

    from services.hasher.index import IndexedImage, Radii
    from services.hasher.milvus_index import MilvusHashIndex, hash_index_config, to_row

    rng = np.random.default_rng(size)
    data = hash_data(rng, size, args.images)
    client = AsyncMilvusClient(uri=f"http://127.0.0.1:{port}")
    index = MilvusHashIndex(
        client,
        "growth_hashes",
        Radii(PDQ_RADIUS, WAVELET_RADIUS, MAX_CANDIDATES),
        index=hash_index_config(args.hash_index, nlist=args.nlist, nprobe=args.hash_nprobe),
        flush=flush_policy(args),
    )
    await index.ensure_collection()

    def image(image_id: str, pdq: bytes, wavelet: bytes) -> IndexedImage:
        return IndexedImage(
            image_id=image_id,
            blob_url=f"https://account.blob.core.windows.net/images/{image_id}.jpg",
            e_tag='"0x8DC0123456789AB"',
            pdq=pdq,
            wavelet=wavelet,
            pdq_quality=100,
            quality=0.5,
            width=4000,
            height=3000,
            size_bytes=3_000_000,
            colour_signature=bytes(280),
            greyscale=False,
            working_copy_url=f"https://account.blob.core.windows.net/dedup-working/{image_id}.jpg",
        )

    started = time.perf_counter()
    for at in range(0, size, FILL_BATCH):
        rows = [
            to_row(image(data.ids[i], data.pdq[i].tobytes(), data.wavelet[i].tobytes()))
            for i in range(at, min(size, at + FILL_BATCH))
        ]
        await client.insert("growth_hashes", rows)
        index.flusher.added(len(rows))
    fill = time.perf_counter() - started

    found: list[set[str]] = []
    seconds: list[float] = []
    cpu0 = cpu_seconds(pid)
    for i, (wavelet, variants) in enumerate(data.queries):
        query = image(f"q{i:06d}", variants[0], wavelet)
        t0 = time.perf_counter()
        hits = await index.add_and_search(query, variants)
        seconds.append(time.perf_counter() - t0)
        found.append({hit.image_id for hit in hits})
    cpu = cpu_seconds(pid) - cpu0
    rss = rss_bytes(pid)
    await index.aclose()
    await client.close()

    pdq64 = data.pdq.view(np.uint64)
    wavelet64 = data.wavelet.view(np.uint64)
    truth = []
    for wavelet, variants in data.queries:
        rows_found = within(wavelet64, wavelet, WAVELET_RADIUS)
        for v in variants:
            rows_found |= within(pdq64, v, PDQ_RADIUS)
        truth.append({data.ids[r] for r in rows_found})
    share, expected = recall(found, truth)
    return Row(
        "hash", size, fill, *per_image(cpu, seconds, args.images), rss / 2**20, share, expected
    )


async def measure_embeddings(args: argparse.Namespace, pid: int, port: int, size: int) -> Row:
    from pymilvus import AsyncMilvusClient

    from services.embedder.index import StoredImage, index_config
    from services.embedder.milvus_index import MilvusEmbeddingIndex

    rng = np.random.default_rng(size + 1)
    data = embedding_data(rng, size, args.images)
    client = AsyncMilvusClient(uri=f"http://127.0.0.1:{port}")
    config = index_config(args.embedding_index, nlist=args.nlist, nprobe=args.nprobe)
    index = MilvusEmbeddingIndex(
        client, "growth_embeddings", EMBEDDING_DIM, config, flush=flush_policy(args)
    )
    await index.ensure_collection()

    def stored(image_id: str) -> StoredImage:
        return StoredImage(
            image_id=image_id,
            blob_url=f"https://account.blob.core.windows.net/images/{image_id}.jpg",
            working_copy_url=f"https://account.blob.core.windows.net/dedup-working/{image_id}.jpg",
            quality=0.5,
            colour_signature=bytes(280),
            greyscale=False,
            e_tag='"0x8DC0123456789AB"',
        )

    started = time.perf_counter()
    scalars = {
        "quality": 0.5,
        "colour_signature": bytes(280).hex(),
        "greyscale": False,
        "e_tag": '"0x8DC0123456789AB"',
    }
    for at in range(0, size, FILL_BATCH):
        rows = [
            {
                "id": data.ids[i],
                "embedding": data.vectors[i],
                "blob_url": f"https://account.blob.core.windows.net/images/{data.ids[i]}.jpg",
                "working_copy_url": "https://account.blob.core.windows.net/dedup-working/"
                f"{data.ids[i]}.jpg",
                **scalars,
            }
            for i in range(at, min(size, at + FILL_BATCH))
        ]
        await client.insert("growth_embeddings", rows)
        index.flusher.added(len(rows))
    if args.server == "standalone":
        await asyncio.to_thread(sealed_and_indexed, port, "growth_embeddings", size)
        await asyncio.to_thread(quiet, pid)
    fill = time.perf_counter() - started

    found: list[set[str]] = []
    seconds: list[float] = []
    cpu0 = cpu_seconds(pid)
    for i, vector in enumerate(data.queries):
        t0 = time.perf_counter()
        await index.upsert(stored(f"q{i:06d}"), vector)
        hits = await index.search(vector, NEIGHBOURS)
        seconds.append(time.perf_counter() - t0)
        found.append({n.image.image_id for n in hits if n.similarity >= ADD_THRESHOLD})
    cpu = cpu_seconds(pid) - cpu0
    rss = rss_bytes(pid)
    await index.aclose()
    await client.close()

    truth = []
    for vector in data.queries:
        similarity = data.vectors @ vector
        near = np.flatnonzero(similarity >= ADD_THRESHOLD)
        near = near[np.argsort(-similarity[near], kind="stable")][: NEIGHBOURS - 1]
        truth.append({data.ids[r] for r in near})
    share, expected = recall(found, truth)
    return Row(
        "embedding", size, fill, *per_image(cpu, seconds, args.images), rss / 2**20, share, expected
    )


def sealed_and_indexed(port: int, collection: str, rows: int, timeout: float = 3600) -> None:
    """Flush the fill into sealed segments and wait until the index covers them, as in a
    collection that has been filling for a while (a search of a growing segment is flat)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=f"http://127.0.0.1:{port}")
    try:
        client.flush(collection)
        deadline = time.monotonic() + timeout
        while True:
            (name,) = client.list_indexes(collection)
            info = client.describe_index(collection, name)
            if int(info.get("indexed_rows", 0)) >= rows and not int(
                info.get("pending_index_rows", 0)
            ):
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the index of {collection} was not built in {timeout:.0f} s: {info}"
                )
            time.sleep(1)
    finally:
        client.close()


def quiet(pid: int, window: float = 5.0, idle_cores: float = 0.1, timeout: float = 1800) -> None:
    """Wait until the server has finished what the fill set going (compaction, index
    builds): its CPU over `window` below `idle_cores`, so the loop measures the images."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < idle_cores:
            return
    print(f"# the server never went quiet within {timeout:.0f} s: its CPU includes its own work")


def flush_policy(args: argparse.Namespace) -> FlushPolicy:
    from dedup.vectors import FlushPolicy

    return FlushPolicy(rows=args.flush_rows, seconds=args.flush_seconds)


def per_image(cpu: float, seconds: list[float], images: int) -> tuple[float, float, float]:
    return (
        cpu / images * 1000,
        percentile(seconds, 50) * 1000,
        percentile(seconds, 95) * 1000,
    )


def print_table(rows: Sequence[Row]) -> None:
    print()
    print(
        f"| {'kind':9} | {'stored':>9} | {'fill s':>7} | {'Milvus CPU ms/image':>19} "
        f"| {'p50 ms':>7} | {'p95 ms':>7} | {'Milvus RSS MB':>13} | {'recall vs flat':>18} |"
    )
    print(f"|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 21}|{'-' * 9}|{'-' * 9}|{'-' * 15}|{'-' * 20}|")
    for r in rows:
        got = f"{r.recall:.4f} of {r.expected}"
        print(
            f"| {r.kind:9} | {r.size:>9,} | {r.fill_seconds:>7.1f} | {r.cpu_ms:>19.1f} "
            f"| {r.p50_ms:>7.1f} | {r.p95_ms:>7.1f} | {r.rss_mb:>13,.0f} | {got:>18} |"
        )


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--float-sizes", type=sizes, default=None, help="default: --sizes")
    parser.add_argument("--images", type=int, default=200, help="measured images per size")
    parser.add_argument("--embedding-index", default="IVF_FLAT")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--hash-index", default="BIN_FLAT", help="BIN_IVF_FLAT: a cluster only")
    parser.add_argument("--hash-nprobe", type=int, default=64)
    parser.add_argument("--flush-rows", type=int, default=0, help="flush policy (0: never)")
    parser.add_argument("--flush-seconds", type=float, default=0, help="flush policy (0: never)")
    parser.add_argument(
        "--server",
        choices=("lite", "standalone"),
        default="lite",
        help="lite: the stack's Milvus Lite (flat searches only); standalone: Milvus 2.3"
        " standalone (make bench-milvus), which builds the indexes a cluster has",
    )
    parser.add_argument(
        "--launcher", type=Path, default=ROOT / "bench" / ".venv-milvus" / "bin" / "milvus-server"
    )
    parser.add_argument("--port", type=int, default=29150, help="the private Milvus's")
    parser.add_argument(
        "--kinds",
        type=lambda text: set(text.split(",")),
        default={"hash", "embedding"},
        help="hash,embedding (Milvus 2.3 standalone holds one vector field per collection:"
        " embedding only)",
    )
    args = parser.parse_args()
    if args.server == "standalone" and "hash" in args.kinds:
        parser.error(
            "Milvus 2.3 has one vector field per collection: with standalone, --kinds embedding"
        )
    float_sizes = set(args.float_sizes if args.float_sizes is not None else args.sizes)

    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, {server_version(args)}")
    print(
        f"# embedding index {args.embedding_index} (nlist {args.nlist}, nprobe {args.nprobe}),"
        f" hash index {args.hash_index},"
        f" flush policy rows={args.flush_rows} seconds={args.flush_seconds}"
    )
    rows: list[Row] = []
    for size in args.sizes:
        with milvus_server(args, size) as pid:
            if "hash" in args.kinds:
                rows.append(asyncio.run(measure_hashes(args, pid, args.port, size)))
                print_table(rows[-1:])
            if "embedding" in args.kinds and size in float_sizes:
                rows.append(asyncio.run(measure_embeddings(args, pid, args.port, size)))
                print_table(rows[-1:])
    print_table(rows)


def server_version(args: argparse.Namespace) -> str:
    from importlib.metadata import version

    if args.server == "lite":
        return f"Milvus Lite {version('milvus-lite')}"
    site = args.launcher.resolve().parents[1] / "lib"
    found = sorted(site.glob("python3*/site-packages/milvus-*.dist-info"))
    name = found[0].name.removeprefix("milvus-").removesuffix(".dist-info") if found else "?"
    return f"Milvus standalone {name}"


if __name__ == "__main__":
    main()
