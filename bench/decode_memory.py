"""The hasher's peak memory with just-under-the-limit images in flight, against its chart limit.

    python -m bench.decode_memory            (make bench-decode-memory)

Writes `--images` (default 4) flat single-colour PNGs of 11500 x 11500 (132 M pixels, just
under the hasher's 2**27 pixel limit; ~400 KB each: the worst ratio of decoded to file
size a PNG can have), then, in a fresh process, opens the hasher as the service does
(`services.hasher.stage.open_hasher`: its settings, decoding threads and decode budget;
the index in memory, the blobs on local disk) and hands it every image at once, one
worker thread each. It reports that process's peak resident set (VmHWM) and its
baseline (after start-up, before the first image) against the hasher's memory limit in
charts/dedup/values.yaml. The measured process imports pymilvus as the service does.

`--code DIR` measures another checkout's hasher with the same script (e.g. the code before
a change: `git archive main | tar -x -C /tmp/before`, then `--code /tmp/before`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "charts" / "dedup" / "values.yaml"
SIDE = 11500  # 11500**2 = 132,250,000 < 2**27 = 134,217,728
CONTAINER = "bench"
UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}


def chart_limit_bytes(values: Path = VALUES, service: str = "hasher") -> int:
    """services.<service>.resources.limits.memory of the chart, in bytes (read by indentation:
    the venv has no YAML parser, and the chart's layout is fixed by its schema)."""
    path: list[str] = []
    for line in values.read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip() or ":" not in stripped:
            continue
        depth = (len(stripped) - len(stripped.lstrip())) // 2
        key, _, value = stripped.strip().partition(":")
        path = [*path[:depth], key]
        if path == ["services", service, "resources", "limits", "memory"]:
            text = value.strip().strip('"')
            for suffix, factor in UNITS.items():
                if text.endswith(suffix):
                    return int(float(text[: -len(suffix)]) * factor)
            return int(text)
    raise ValueError(f"no services.{service}.resources.limits.memory in {values}")


def write_images(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    paths = []
    for i in range(count):
        path = folder / f"flat-{i}.png"
        colour = (40 * i % 256, 200, 255 - 30 * i % 256)  # different images, same cost
        Image.new("RGB", (SIDE, SIDE), colour).save(path, "PNG", compress_level=9)
        paths.append(path)
    return paths


def peak_rss_bytes() -> int:
    """This process's peak resident set: VmHWM, which (unlike ru_maxrss, carried over
    from the parent across fork and exec) counts only this program's own memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise OSError("no VmHWM in /proc/self/status")


async def measure(paths: list[Path], whole: bool) -> dict[str, Any]:
    """In the measured process: the hasher as the service opens it, every image at once."""
    if whole:  # the PNGs decoded whole: only the decode budget bounds the peak
        from services.hasher import png_strips

        png_strips.can_strip = lambda img: False
    import dedup.vectors  # noqa: F401  (the service imports pymilvus for its index)
    from dedup.runtime import stage

    if hasattr(stage, "return_large_blocks"):  # as the service's entry point does
        stage.return_large_blocks()
    from apps.scan.local_blobs import LocalBlobs
    from dedup.blob import BlobInfo
    from dedup.events import created_from_listing
    from services.hasher.settings import HasherSettings
    from services.hasher.stage import open_hasher

    settings = HasherSettings(worker_threads=len(paths), concurrency=len(paths))
    blobs = LocalBlobs({CONTAINER: {p.name: p for p in paths}}, paths[0].parent / "scratch")
    events = [
        created_from_listing(
            "bench",
            "file://bench",
            CONTAINER,
            BlobInfo(p.name, p.stat().st_size, "0x1", "image/png", time.time()),
        )
        for p in paths
    ]
    async with open_hasher(settings, blobs, in_memory=True) as hasher:
        baseline = peak_rss_bytes()
        started = time.perf_counter()
        results = await asyncio.gather(*(hasher.handle(e) for e in events))
        seconds = time.perf_counter() - started
    statuses = [out.message.image.status for outs in results for out in outs]  # type: ignore[attr-defined]
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak_rss_bytes(),
        "seconds": round(seconds, 2),
        "ok": sum(1 for s in statuses if s == 1),
        "statuses": statuses,
        "decode_memory_bytes": getattr(settings, "decode_memory_bytes", None),
        "worker_threads": len(paths),
    }


def run_child(paths: list[Path], code: Path | None, whole: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code / "libs"), str(code)])
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *map(str, paths)]
    command += ["--whole"] if whole else []
    out = subprocess.run(command, env=env, cwd=code or ROOT, check=True, capture_output=True)
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--code", type=Path, help="the checkout whose hasher to measure")
    p.add_argument(
        "--whole", action="store_true", help="no strip-wise PNG decoding: the budget alone"
    )
    p.add_argument("--child", nargs="+", type=Path, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        print(json.dumps(asyncio.run(measure(ns.child, ns.whole))))
        return 0
    limit = chart_limit_bytes()
    with tempfile.TemporaryDirectory(prefix="dedup-decode-memory-") as tmp:
        paths = write_images(Path(tmp), ns.images)
        size = paths[0].stat().st_size
        result = run_child(paths, ns.code, ns.whole)
    mib = 1 << 20
    budget = result["decode_memory_bytes"]
    print(f"{ns.images} flat PNGs of {SIDE}x{SIDE} ({size // 1024} KB each), all in flight")
    print(f"  code                {ns.code or ROOT}")
    print(f"  decode budget       {f'{budget // mib} MiB' if budget else 'none'}")
    print(f"  PNG decoding        {'whole' if ns.whole or not budget else 'in strips'}")
    print(f"  baseline RSS        {result['baseline_bytes'] / mib:8.0f} MiB")
    print(f"  peak RSS            {result['peak_bytes'] / mib:8.0f} MiB")
    print(f"  chart limit         {limit / mib:8.0f} MiB  (services.hasher.resources.limits)")
    print(f"  peak / limit        {result['peak_bytes'] / limit:8.0%}")
    print(f"  images decided OK   {result['ok']} of {ns.images} in {result['seconds']} s")
    return 0 if result["peak_bytes"] < limit else 1


if __name__ == "__main__":
    sys.exit(main())
