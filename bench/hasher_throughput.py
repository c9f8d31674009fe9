"""The hasher's throughput against decoding alone, on the same files in the same run.

The floor of the hasher's cost is decoding each image once (with downscale-on-decode,
as the hasher decodes). This measures, on one set of generated photos in typical upload
formats and sizes:

- decode-only: `services.hasher.decode.decode`, the very decode the hasher runs;
- hasher: `services.hasher.features.extract`: that decode plus both hashes with their 8
  turns, the colour signature, the quality score and the working copy's JPEG encode;
- (--milvus) the service's whole handler: the above in worker threads at the service's
  concurrency, plus the working copy upload (in memory here), and the index: once an
  in-memory one, once the local Milvus (an upsert and two searches per image), beside
  decode-only at the same concurrency in the same thread pool (one thread per CPU, as
  the service runs); the local Milvus shares this machine's cores;

and prints images/s and the ratio hasher / decode-only (target: at least 0.8). Rounds
alternate between the two so that a neighbour's load on the machine hits both alike; the
median round counts. A full-resolution decode is shown for scale.

Then the CPU (time.process_time, one thread) of the decode alone and of the features
alone (`features.compute` on the decoded images), per image, and their ratio, each code
in a process of its own set up as the service sets itself up (glibc's malloc thresholds,
`dedup.memory`; OpenCV on one thread); with --baseline, another checkout of the code
(`git archive COMMIT | tar -x -C DIR`) too, its processes interleaved with this one's;
the best and the median round of each are shown. --set edited uses the edited folder of
bench/scan_cost.py (real dev photos at 1600 px, a quarter originals and their crops,
captions, borders, ...) instead of the upload mix.

    .venv/bin/python -m bench.hasher_throughput [--images 60] [--rounds 5] [--milvus]
        [--set mix|edited] [--baseline DIR] [--cpu-only]

(as a module: --set edited imports bench.scan_cost).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
from PIL import Image

from dedup import synthetic

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".run" / "bench" / "hasher-files"
# (count share, width, height, format, quality): what people upload, roughly.
MIX = (
    (0.35, 4000, 3000, "JPEG", 90),  # a phone camera's 12 MP JPEG
    (0.25, 1920, 1280, "JPEG", 85),  # a resized web copy
    (0.15, 1200, 900, "PNG", 0),  # a screenshot-like lossless file
    (0.15, 1600, 1200, "WEBP", 80),
    (0.10, 800, 600, "JPEG", 75),  # a small thumbnail-ish copy
)


def mix_files(count: int) -> Path:
    """A folder of `count` encoded photos in the MIX, generated once under .run/bench/."""
    key = hashlib.sha256(json.dumps([count, MIX]).encode()).hexdigest()[:12]
    folder = CACHE / key
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {count} photos into {folder} (once)", file=sys.stderr)
    index = 0
    for share, w, h, fmt, quality in MIX:
        for _ in range(max(1, round(share * count))):
            if index == count:
                break
            img = synthetic.photo(50_000 + index, (w, h))
            buffer = io.BytesIO()
            params = {"quality": quality} if quality else {}
            img.save(buffer, fmt, **params)
            (folder / f"{index:04d}.{fmt.lower()}").write_bytes(buffer.getvalue())
            index += 1
    return folder


def edited_files(count: int) -> Path:
    """bench/scan_cost.py's edited folder of `count` files, written once under .run/bench/."""
    from bench.dev_sets import DEFAULT_DEV
    from bench.scan_cost import PhotoSource, plan_edited, real_photos, write_folder

    folder = ROOT / ".run" / "bench" / f"hasher-edited-{count}"
    if not (folder.is_dir() and len(list(folder.iterdir())) == count):
        print(f"writing the edited folder into {folder} (once)", file=sys.stderr)
        write_folder(
            "edited", folder, plan_edited(count), PhotoSource(real_photos(DEFAULT_DEV), 1600)
        )
    return folder


def cpu_worker(folder: Path, passes: int) -> dict[str, float | str]:
    """In a process of its own: the best of `passes` passes of the CPU seconds that decoding
    every file in `folder` takes, and computing the features of every decoded image."""
    from dedup.memory import return_large_blocks
    from services.hasher.decode import decode
    from services.hasher.features import compute

    return_large_blocks()  # as every service's entry point does
    cv2.setNumThreads(1)
    data = [p.read_bytes() for p in sorted(folder.iterdir())]
    decoded = [decode(d) for d in data]
    for image in decoded[:3]:  # warm caches and lazy imports
        compute(image)
    best = {"decode": float("inf"), "compute": float("inf")}
    for _ in range(passes):
        started = time.process_time()
        for encoded in data:
            decode(encoded)
        best["decode"] = min(best["decode"], time.process_time() - started)
        started = time.process_time()
        for image in decoded:
            compute(image)
        best["compute"] = min(best["compute"], time.process_time() - started)
    costs: dict[str, float | str] = {k: 1000 * v / len(data) for k, v in best.items()}
    return costs | {"code": str(Path(sys.modules[compute.__module__].__file__ or "").parents[2])}


def cpu_costs(
    folder: Path, rounds: int, codes: dict[str, Path]
) -> dict[str, dict[str, list[float]]]:
    """CPU ms per image of decode and compute for each checkout in `codes`, each round a
    fresh process per checkout, rounds interleaved: every round's figure."""
    costs: dict[str, dict[str, list[float]]] = {name: {} for name in codes}
    for _ in range(rounds):
        for name, code in codes.items():
            env = os.environ | {"PYTHONPATH": f"{code / 'libs'}{os.pathsep}{code}"}
            argv = [sys.executable, __file__, "--cpu-worker", str(folder)]
            out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.splitlines()[-1])
            if Path(result.pop("code")) != code:
                raise SystemExit(f"{name}: the worker imported another checkout's code")
            for key, ms in result.items():
                costs[name].setdefault(key, []).append(ms)
    return costs


def cpu_report(folder: Path, costs: dict[str, dict[str, list[float]]]) -> None:
    """Each checkout's best and median round (a neighbour's load only ever adds; the
    median shows how much it moved); the ratio is of the medians."""
    where = os.path.relpath(folder, ROOT)
    print(f"\nCPU ms per image, one thread, best / median of the rounds ({where}):")
    print(f"  {'code':40s} {'decode-only':>15s} {'compute':>15s} {'ratio':>6s}")
    for name, c in costs.items():
        decode_ms, compute_ms = (
            f"{min(c[k]):6.2f} / {statistics.median(c[k]):5.2f}" for k in ("decode", "compute")
        )
        ratio = statistics.median(c["compute"]) / statistics.median(c["decode"])
        print(f"  {name:40s} {decode_ms:>15s} {compute_ms:>15s} {ratio:6.2f}")
    if len(costs) == 2:  # the baseline, then this checkout
        # A round's two processes ran back to back: their ratio cancels most of a load change.
        before, after = costs.values()
        for key in ("decode", "compute"):
            pairs = zip(after[key], before[key], strict=True)
            change = statistics.median(a / b for a, b in pairs)
            print(f"  {key}: this checkout / baseline, median of the rounds' ratios: {change:.3f}")


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.convert("RGB").load()


def timed_round(work: Callable[[bytes], object], data: Sequence[bytes], threads: int) -> float:
    started = time.perf_counter()
    if threads == 1:
        for d in data:
            work(d)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, data))
    return time.perf_counter() - started


def compare(
    data: Sequence[bytes],
    rounds: int,
    threads: int,
    contenders: dict[str, Callable[[bytes], object]],
) -> dict[str, list[float]]:
    """Each contender's round times (seconds), rounds interleaved."""
    for work in contenders.values():  # warm caches and lazy imports
        timed_round(work, data[:3], 1)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            times[name].append(timed_round(work, data, threads))
    return times


async def with_milvus(
    data: Sequence[bytes], rounds: int, concurrency: int
) -> dict[str, list[float]]:
    """The service's handler (real Milvus, in-memory blobs) vs decode-only, same concurrency."""
    from dedup.blob import BlobInfo
    from dedup.events import created_from_listing
    from dedup.settings import MilvusSettings
    from dedup.v1.events_pb2 import BlobEvent
    from dedup.vectors import open_milvus
    from services.hasher.decode import decode
    from services.hasher.features import extract
    from services.hasher.handler import Hasher, HasherConfig
    from services.hasher.index import Radii
    from services.hasher.milvus_index import MilvusHashIndex
    from services.hasher.settings import HasherSettings
    from services.hasher.tests.fakes import FakeIndex

    class MemoryBlobs:
        def __init__(self) -> None:
            self.blobs: dict[tuple[str, str], bytes] = {}

        async def download(self, container: str, name: str, max_bytes: int) -> bytes:
            return self.blobs[container, name]

        async def upload(
            self, container: str, name: str, data: bytes, content_type: str = ""
        ) -> str:
            self.blobs[container, name] = data
            return f"memory://{container}/{name}"

        async def delete(self, container: str, name: str) -> None:
            self.blobs.pop((container, name), None)

    s = HasherSettings()
    blobs = MemoryBlobs()
    events = []
    for i, d in enumerate(data):
        blobs.blobs["bench", f"{i}"] = d
        info = BlobInfo(f"{i}", len(d), "e", "image/jpeg", 0.0)
        events.append(created_from_listing("bench", "memory://", "bench", info))
    config = HasherConfig("working", s.blob_max_download_bytes, s.pdq_radius, s.wavelet_radius, 32)
    milvus = open_milvus(MilvusSettings())
    collection = f"bench_hashes_{uuid.uuid4().hex[:8]}"
    index = MilvusHashIndex(milvus, collection, Radii(s.pdq_radius, s.wavelet_radius, 32), "bench")
    await index.ensure_collection()
    # As the service runs: one worker thread per CPU, the same pool for both contenders.
    executor = ThreadPoolExecutor(os.cpu_count() or 1)
    hasher = Hasher(blobs, index, extract, config, executor)
    in_memory = Hasher(blobs, FakeIndex(), extract, config, executor)
    limit = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def handler_round(which: Hasher) -> float:
        async def one(event: BlobEvent) -> None:
            async with limit:
                await which.handle(event)

        started = time.perf_counter()
        await asyncio.gather(*(one(e) for e in events))
        return time.perf_counter() - started

    async def decode_round() -> float:
        async def one(d: bytes) -> None:
            async with limit:
                await loop.run_in_executor(executor, decode, d)

        started = time.perf_counter()
        await asyncio.gather(*(one(d) for d in data))
        return time.perf_counter() - started

    try:
        await handler_round(hasher)  # warm-up; later rounds upsert the same ids again
        times: dict[str, list[float]] = {
            "decode-only": [],
            "handler+memory": [],
            "handler+milvus": [],
        }
        for _ in range(rounds):
            times["decode-only"].append(await decode_round())
            times["handler+memory"].append(await handler_round(in_memory))
            times["handler+milvus"].append(await handler_round(hasher))
    finally:
        executor.shutdown()
        await milvus.drop_collection(collection)
        await milvus.close()
    return times


def report(
    title: str, count: int, times: dict[str, list[float]], baseline: str, contenders: Sequence[str]
) -> float:
    """Median images/s of each; a ratio is the median of the rounds' own ratios (each
    round's runs are back to back, so a load change on a shared machine cancels).
    Returns the first contender's ratio."""
    print(f"\n{title}")
    for name, t in times.items():
        rate = count / statistics.median(t)
        print(f"  {name:16s} {rate:8.1f} images/s  {1000 / rate:7.2f} ms/image")
    ratios = []
    for contender in contenders:
        pairs = zip(times[baseline], times[contender], strict=True)
        ratio = statistics.median(b / c for b, c in pairs)
        verdict = "meets" if ratio >= 0.8 else "BELOW"
        print(f"  ratio {contender} / {baseline}: {ratio:.2f} ({verdict} the 0.8 target)")
        ratios.append(ratio)
    return ratios[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="worker threads (1: one core)")
    parser.add_argument("--milvus", action="store_true", help="also the handler with Milvus")
    parser.add_argument("--concurrency", type=int, default=8, help="handlers at once (--milvus)")
    parser.add_argument("--set", choices=("mix", "edited"), default="mix", help="which files")
    parser.add_argument("--baseline", type=Path, help="another checkout, for the CPU table")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU table")
    parser.add_argument("--cpu-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_worker:
        print(json.dumps(cpu_worker(args.cpu_worker, 3)))
        return 0

    from dedup.memory import return_large_blocks
    from services.hasher.decode import decode
    from services.hasher.features import extract

    return_large_blocks()  # as every service's entry point does, before any thread starts
    cv2.setNumThreads(1)  # as the service sets it (services/hasher/__main__.py)
    if args.set == "edited":
        folder = edited_files(args.images)
        what = "the edited folder of bench/scan_cost.py, JPEG at 1600 px"
    else:
        folder = mix_files(args.images)
        what = "JPEG 4000x3000 to 800x600, PNG, WebP"
    data = [p.read_bytes() for p in sorted(folder.iterdir())]
    megabytes = sum(map(len, data)) / 1e6
    script = f"-m {__spec__.name}" if __spec__ else os.path.relpath(sys.argv[0], ROOT)
    print(f"$ {' '.join([os.path.relpath(sys.executable, ROOT), script, *sys.argv[1:]])}")
    print(
        f"{len(data)} files ({megabytes:.1f} MB: {what});"
        f" {args.rounds} interleaved rounds; {args.threads} thread(s);"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    codes = {f"this checkout ({ROOT})": ROOT}
    if args.baseline:
        codes = {f"baseline ({args.baseline})": args.baseline.resolve()} | codes
    cpu_report(folder, cpu_costs(folder, args.rounds, codes))
    if args.cpu_only:
        return 0
    times = compare(
        data,
        args.rounds,
        args.threads,
        {"full decode": full_decode, "decode-only": decode, "hasher": extract},
    )
    ratio = report(
        "per-image work (decode + features + working copy encode):",
        len(data),
        times,
        "decode-only",
        ["hasher"],
    )
    if args.milvus:
        milvus_times = asyncio.run(with_milvus(data, args.rounds, args.concurrency))
        report(
            f"the service's handler at concurrency {args.concurrency}, in-memory blobs, with an"
            " in-memory index and with the local Milvus (upsert + 2 searches per image):",
            len(data),
            milvus_times,
            "decode-only",
            ["handler+memory", "handler+milvus"],
        )
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
