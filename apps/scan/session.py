"""What a `dedup scan` runs in: its options, its result, its servers and its workspace;
`run_scan`, one whole scan (the command's and the Python API's, apps.api).

Apart from the engine (core.py) so that a scan can start the private Triton before it
imports the engine and the services (~1 s of imports, overlapping Triton's start).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from apps.scan.progress import ProgressCallback
from apps.scan.servers import Endpoints, private_triton
from dedup.report.model import Row


@dataclass(frozen=True)
class ScanOptions:
    # Decoding threads of the hasher; 0: one per CPU.
    workers: int = 0
    # Images in flight at once (the embedder merges them into Triton batches). Memory grows
    # with it (each holds its file, its decode, its matches); a few per core keep the
    # cores busy.
    in_flight: int = 8
    # Thumbnails for the HTML gallery (made from the working copies before they go).
    thumbnails: bool = False
    # The progress bar on stderr.
    progress: bool = True
    # Called with each phase's counts (done, total, phase), bar or not.
    on_progress: ProgressCallback | None = None
    # The state file (apps.scan.state): what the index pass made of each file is kept
    # there as it is made, and what it holds of an unchanged file is reused; None: none.
    state: Path | None = None
    # Clear the state first: every file indexed afresh.
    fresh: bool = False
    # Told, in a line, what the state gave (files resumed) and kept (on an interruption).
    notify: Callable[[str], None] | None = None


@dataclass
class ScanResult:
    root: Path
    rows: list[Row]  # one per file, in file order; `path` is the file's relative path
    thumbnails: dict[str, str] = field(default_factory=dict)  # image id -> data URI
    # Images a stage failed on (a bug, or a dependency that stayed away): id -> reason.
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # Files whose index pass was loaded from the state instead of done again.
    reused: int = 0
    state: Path | None = None  # the state file, if one was kept


@contextlib.asynccontextmanager
async def scan_endpoints(
    run_dir: Path, milvus_uri: str | None = None, triton_url: str | None = None
) -> AsyncIterator[Endpoints]:
    """The servers a scan uses: the given Triton, else a private one under `run_dir`; the
    given Milvus, else none (the indexes live in the scan's process: a folder fits)."""
    if triton_url:
        yield Endpoints(milvus_uri=milvus_uri, triton_url=triton_url)
        return
    from services.embedder.settings import EmbedderSettings  # the services: not before

    async with private_triton(run_dir, EmbedderSettings().triton_model) as (url, ready):
        yield Endpoints(milvus_uri=milvus_uri, triton_url=url, ready=ready)


@contextlib.asynccontextmanager
async def workspace() -> AsyncIterator[Path]:
    """A temporary directory for the servers' data and the working copies."""
    with tempfile.TemporaryDirectory(prefix="dedup-scan-") as tmp:
        yield Path(tmp)


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
        from apps.scan.core import scan

        return await scan(root, ends, tmp / "blobs", options)
