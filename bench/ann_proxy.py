"""What a Milvus cluster's approximate indexes would find, where Milvus Lite cannot build
them: faiss's BIN_IVF (binary inverted file, range search) and HNSW, on the growth bench's
synthetic data (bench/milvus_growth.py: random vectors of the real widths with planted
neighbours), against an exact search over the same vectors.

Milvus's knowhere builds its IVF indexes on faiss and its HNSW on an hnswlib-like graph,
so these are the same algorithms, not the same code paths or a cluster's segmenting:
a proxy, not a measurement of Milvus. faiss is not a dependency of the project; run it
from a venv of its own (numpy >= 2):

    python -m venv /tmp/faissenv && /tmp/faissenv/bin/pip install faiss-cpu numpy
    nice -n 10 /tmp/faissenv/bin/python bench/ann_proxy.py [--size 100000]
        [--nprobe 16,64,256,1024] [--ef 64,256,512,1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs")]

import faiss  # type: ignore[import-not-found]  # noqa: E402

from bench import milvus_growth as growth  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def binary_ivf(size: int, images: int, nlist: int, nprobes: list[int]) -> None:
    data = growth.hash_data(np.random.default_rng(size), size, images)
    stored = data.pdq.view(np.uint64)
    truth = []
    for _, variants in data.queries:
        near: set[int] = set()
        for v in variants:
            near |= growth.within(stored, v, growth.PDQ_RADIUS)
        truth.append(near)
    queries = np.frombuffer(b"".join(b"".join(v) for _, v in data.queries), np.uint8)
    queries = queries.reshape(-1, growth.HASH_BYTES)
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, nlist)
    started = time.perf_counter()
    index.train(data.pdq)
    index.add(data.pdq)
    built = time.perf_counter() - started
    print(f"BIN_IVF_FLAT nlist {nlist} on {size:,} PDQ hashes: built in {built:.0f} s")
    for nprobe in nprobes:
        index.nprobe = min(nprobe, nlist)
        started = time.process_time()
        # faiss's binary range search keeps distances below the radius: radius + 1.
        limits, _, found = index.range_search(queries, growth.PDQ_RADIUS + 1)
        cpu = (time.process_time() - started) / images * 1000
        per = growth.VARIANTS
        got = [set(found[limits[per * i] : limits[per * i + per]].tolist()) for i in range(images)]
        hit = sum(len(g & t) for g, t in zip(got, truth, strict=True))
        expected = sum(len(t) for t in truth)
        print(
            f"  nprobe {nprobe:>5}: recall {hit / expected:.3f} of {expected}"
            f" within radius {growth.PDQ_RADIUS}, {cpu:.2f} ms CPU per image (8 PDQ queries)"
        )


def hnsw(size: int, images: int, m: int, ef_construction: int, efs: list[int]) -> None:
    data = growth.embedding_data(np.random.default_rng(size + 1), size, images)
    truth = [
        set(np.flatnonzero(data.vectors @ q >= growth.ADD_THRESHOLD).tolist()) for q in data.queries
    ]
    expected = sum(len(t) for t in truth)

    def recall(found: list[np.ndarray]) -> float:
        return sum(len(set(f.tolist()) & t) for f, t in zip(found, truth, strict=True)) / expected

    flat = faiss.IndexFlatIP(growth.EMBEDDING_DIM)
    flat.add(data.vectors)
    started = time.process_time()
    found = [flat.search(data.queries[i : i + 1], growth.NEIGHBOURS)[1][0] for i in range(images)]
    cpu = (time.process_time() - started) / images * 1000
    print(f"FLAT on {size:,} embeddings: recall {recall(found):.3f}, {cpu:.2f} ms CPU per query")
    index = faiss.IndexHNSWFlat(growth.EMBEDDING_DIM, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    started = time.perf_counter()
    index.add(data.vectors)
    built = time.perf_counter() - started
    print(f"HNSW M {m} efConstruction {ef_construction}: built in {built:.0f} s")
    for ef in efs:
        index.hnsw.efSearch = ef
        started = time.process_time()
        found = [
            index.search(data.queries[i : i + 1], growth.NEIGHBOURS)[1][0] for i in range(images)
        ]
        cpu = (time.process_time() - started) / images * 1000
        print(
            f"  ef {ef:>5}: recall {recall(found):.4f} of {expected} (cosine >= "
            f"{growth.ADD_THRESHOLD}), {cpu:.3f} ms CPU per query"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=ints, default=[16, 64, 256, 1024])
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", type=ints, default=[64, 256, 512, 1024])
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}  (faiss {faiss.__version__}, one thread per search)")
    faiss.omp_set_num_threads(1)
    binary_ivf(args.size, args.images, args.nlist, args.nprobe)
    hnsw(args.size, args.images, args.m, args.ef_construction, args.ef)


if __name__ == "__main__":
    main()
