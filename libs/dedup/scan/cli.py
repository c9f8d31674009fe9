"""`dedup scan DIR`: de-duplicate a local folder with the pipeline's own five stages.

    dedup scan DIR [--json OUT] [--html DIR] [--workers N]

No Kafka, no blob storage, no `make up`: the services' handlers run in this process on
the folder's files, with their hash and embedding indexes in this process (exact
search: a folder fits in memory); Triton is started privately on free ports (from
.venv-triton, as `make setup` installs it) with only the embedder's model, and stopped at
the end, unless --triton-url names a running one. --milvus-uri keeps the indexes in a
running Milvus instead (say, the local stack's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import signal
import sys
from pathlib import Path

from dedup.cpus import available_cpus
from dedup.logs import configure_cli_logging
from dedup.report import model
from dedup.scan.output import to_html, to_json
from dedup.scan.servers import ServerError
from dedup.scan.session import ScanOptions, ScanResult, scan_endpoints, workspace

M_ARENA_MAX = -8  # from <malloc.h>


async def run_scan(
    root: Path,
    options: ScanOptions,
    milvus_uri: str | None = None,
    triton_url: str | None = None,
) -> ScanResult:
    """One scan, with its own servers (or the given ones) and a temporary workspace."""
    async with workspace() as tmp, scan_endpoints(tmp / "run", milvus_uri, triton_url) as ends:
        # Imported once a private Triton is starting: the engine and the services take
        # ~1 s to import, Triton ~2 s to start; the two overlap.
        from dedup.scan.core import scan

        return await scan(root, ends, tmp / "blobs", options)


def write_outputs(result: ScanResult, json_out: Path | None, html_dir: Path | None) -> None:
    root = str(result.root)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(to_json(root, result.rows, result.seconds), encoding="utf-8")
        print(f"JSON: {json_out}")
    if html_dir:
        html_dir.mkdir(parents=True, exist_ok=True)
        index = html_dir / "index.html"
        index.write_text(to_html(root, result.rows, result.thumbnails), encoding="utf-8")
        print(f"HTML gallery: {index}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dedup scan",
        description="Find duplicate images in a local folder (recursively) with the "
        "pipeline's own stages; every file gets a cluster, keep or not, and a reason.",
    )
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--json", type=Path, metavar="OUT", help="write every file's result here")
    p.add_argument("--html", type=Path, metavar="DIR", help="write the gallery to DIR/index.html")
    p.add_argument(
        "--workers",
        type=int,
        default=available_cpus(),
        help="threads decoding images (default: one per CPU this process may use)",
    )
    p.add_argument(
        "--in-flight",
        type=int,
        default=ScanOptions.in_flight,
        help=f"images in flight at once (default {ScanOptions.in_flight}; memory grows with it)",
    )
    p.add_argument("--milvus-uri", help="keep the indexes in this running Milvus (else in memory)")
    p.add_argument("--triton-url", help="a running Triton's gRPC host:port (else a private one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def few_malloc_arenas() -> None:
    """Two glibc malloc arenas instead of one per thread (as MALLOC_ARENA_MAX=2 would):
    the decoding and matching threads each fragment an arena of their own otherwise, a
    large part of a scan's peak memory. Before any thread starts; a no-op off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def main(args: list[str] | None = None) -> int:
    few_malloc_arenas()
    ns = parser().parse_args(args)
    if not ns.folder.is_dir():
        print(f"dedup scan: {ns.folder} is not a directory", file=sys.stderr)
        return 2
    if ns.workers < 1 or ns.in_flight < 1:
        print("dedup scan: --workers and --in-flight must be at least 1", file=sys.stderr)
        return 2
    configure_cli_logging()
    options = ScanOptions(
        workers=ns.workers,
        in_flight=ns.in_flight,
        thumbnails=ns.html is not None,
        progress=not ns.quiet,
    )
    # SIGTERM as Ctrl-C: the private servers are stopped and the workspace removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = asyncio.run(run_scan(ns.folder, options, ns.milvus_uri, ns.triton_url))
    except (ServerError, ValueError) as error:
        print(f"dedup scan: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndedup scan: interrupted", file=sys.stderr)
        return 130
    write_outputs(result, ns.json, ns.html)
    from dedup.report.cli import summary  # here: its Kafka imports would delay Triton

    print(f"{summary(model.totals(result.rows))} ({result.seconds:.1f} s)")
    if result.failures:
        print(f"{len(result.failures)} images hit a stage failure (see `reason`)", file=sys.stderr)
    return 0
