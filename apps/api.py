"""The Python API: `apps.find_duplicates(folder) -> Result`, no Kafka and no Azure.

It is `dedup scan` without the terminal: the same engine (apps.scan, a private Triton
on free ports, the indexes in this process), the same rows (dedup.report.model) and the
same JSON (`Result.to_json`, result.schema.json). What it adds is what a caller in
Python needs: a typed, frozen result, a progress callback instead of the bar, logs kept
below WARNING out of the caller's logging, and exceptions instead of exit codes.
`Scanner` keeps the private Triton up across several scans.

Importing this module is cheap (~0.15 s); the engine is imported by the first scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from apps.scan.output import to_json
from apps.scan.progress import ProgressCallback
from apps.scan.servers import Endpoints, ServerError
from apps.scan.session import ScanOptions, ScanResult
from dedup.report import model
from dedup.report.model import Cluster, Row, Totals

__all__ = ["Cluster", "Result", "Row", "Scanner", "ServerStartError", "find_duplicates"]

# The loggers a scan's code logs to below WARNING: the stages' own (dedup.*, services.*)
# and the libraries they run (grpc's channel set-up, Pillow's plugins, asyncio's loop).
# During a call, those the caller has not given a level log WARNING and up only.
QUIET_LOGGERS = ("dedup", "services", "grpc", "PIL", "asyncio", "tritonclient")

T = TypeVar("T")


class ServerStartError(RuntimeError):
    """A server the scan needs (the private Triton) could not be started; the message has
    the reason and its log's tail (`make setup` installs Triton)."""


@dataclass(frozen=True)
class Result:
    """What `find_duplicates` found in a folder. Every file is one `Row` in `images` (the
    JSON's entry: `path` relative to `root`, `cluster`, `keep`, `decision`, `status`,
    `reason`, `quality`, the evidence in `scores`); the other fields are views of them."""

    root: Path
    images: tuple[Row, ...]  # one per file, in path order
    # Duplicate clusters, the most bytes to free first: `kept` (the copy to keep) and
    # `duplicates` (each with its `reason` and `scores`), `bytes_freed`.
    clusters: tuple[Cluster, ...]
    unique: tuple[Row, ...]
    unreadable: tuple[Row, ...]  # images that could not be read (status says why)
    not_images: tuple[Row, ...]  # files that are no image at all
    # Other shots of one scene: reported, never merged (each pair once, by path).
    similar: tuple[tuple[Row, Row], ...]
    # Images a stage failed on (their reason says so too): path -> reason.
    failures: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def totals(self) -> Totals:
        return model.totals(self.images)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON of `dedup scan --json` (libs/dedup/report/result.schema.json); also
        written to `path` if given."""
        text = to_json(str(self.root), self.images, self.seconds)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def similar_pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """Each pair of other shots of one scene once (named by either side), by path."""
    by_id = {r.image_id: r for r in rows}
    ids = {tuple(sorted((r.image_id, s))) for r in rows for s in r.similar if s in by_id}
    pairs = [sorted((by_id[a], by_id[b]), key=lambda r: r.path) for a, b in ids]
    return sorted(((a, b) for a, b in pairs), key=lambda pair: (pair[0].path, pair[1].path))


def result_of(root: Path, rows: list[Row], failures: Mapping[str, str], seconds: float) -> Result:
    """The Result of a scan's rows (`failures` by image id)."""
    path_of = {r.image_id: r.path for r in rows}
    return Result(
        root=root,
        images=tuple(rows),
        clusters=tuple(model.clusters(rows)),
        unique=tuple(r for r in rows if r.decision == model.UNIQUE),
        unreadable=tuple(
            r for r in rows if r.decision == model.UNREADABLE and r.status != model.NOT_AN_IMAGE
        ),
        not_images=tuple(r for r in rows if r.status == model.NOT_AN_IMAGE),
        similar=tuple(similar_pairs(rows)),
        failures={path_of[i]: why for i, why in failures.items() if i in path_of},
        seconds=seconds,
    )


@contextlib.contextmanager
def quiet_logs(level: int = logging.WARNING) -> Iterator[None]:
    """During the block, QUIET_LOGGERS that have no level of their own log `level` and up;
    as they were after. The root logger, its handlers and any logger the caller set a
    level on are left alone (a caller who wants the stages' INFO lines sets "dedup")."""
    raised = [
        logger for logger in map(logging.getLogger, QUIET_LOGGERS) if logger.level == logging.NOTSET
    ]
    for logger in raised:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger in raised:
            if logger.level == level:  # not set meanwhile by someone else
                logger.setLevel(logging.NOTSET)


def checked_folder(folder: str | os.PathLike[str]) -> Path:
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    return root


def find_duplicates(
    folder: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    in_flight: int = ScanOptions.in_flight,
    triton_url: str | None = None,
) -> Result:
    """Find the duplicate images under `folder` (recursively), as `dedup scan` does.

    progress: called as `progress(done, total, phase)` when each phase starts (done 0)
        and after each of its files; phases: "indexing" (decode and hash), "embedding",
        "matching" (each image judged against the whole folder). Called in the scan's
        own thread; an exception from it ends the scan.
    workers: decoding threads (default: one per CPU this process may use).
    in_flight: images in flight at once (memory grows with it).
    triton_url: a running Triton's gRPC host:port (default: a private one, started on
        free ports and stopped at the end; it needs `make setup`).

    Raises FileNotFoundError / NotADirectoryError for a bad folder and ValueError for a
    bad option (before any server starts), ServerStartError when Triton cannot start.
    Works inside a running event loop too (a notebook): the scan has a loop of its own.
    """
    root = checked_folder(folder)
    with Scanner(workers=workers, in_flight=in_flight, triton_url=triton_url) as scanner:
        return scanner.scan(root, progress=progress)


class Scanner:
    """Several scans on one set of servers: the private Triton starts once, when the
    Scanner is entered, and stops when it is left (find_duplicates starts one per call).

        with apps.Scanner() as scanner:
            first = scanner.scan("photos/2025")
            second = scanner.scan("photos/2026", progress=show)

    Each scan judges its own folder: the indexes are not kept from one scan to the next.
    The scans run one at a time in the Scanner's own thread and event loop; options and
    exceptions as find_duplicates'.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        in_flight: int = ScanOptions.in_flight,
        triton_url: str | None = None,
    ) -> None:
        if (workers is not None and workers < 1) or in_flight < 1:
            raise ValueError("workers and in_flight must be at least 1")
        self._workers, self._in_flight, self._triton_url = workers, in_flight, triton_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack = contextlib.AsyncExitStack()
        self._endpoints: Endpoints | None = None
        self._workspace = Path()
        self._scans = 0

    def __enter__(self) -> Scanner:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Start the servers (a private Triton starts in the background: the first scan
        hashes its files meanwhile)."""
        if self._loop is not None:
            raise RuntimeError("this Scanner is open already")
        with quiet_logs():  # asyncio logs its selector at DEBUG
            self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dedup-scanner", daemon=True
        )
        self._thread.start()
        try:
            self._endpoints = self._run(self._start())
        except BaseException:
            self.close()
            raise

    def scan(
        self, folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None
    ) -> Result:
        """The duplicates under `folder`, as find_duplicates finds them."""
        root = checked_folder(folder)
        if self._endpoints is None:
            raise RuntimeError("the Scanner is not open: `with Scanner() as scanner: ...`")
        self._scans += 1
        done = self._run(self._scan(root, progress, self._workspace / f"scan-{self._scans}"))
        return result_of(root, done.rows, done.failures, done.seconds)

    def close(self) -> None:
        """Stop the servers and remove the workspace; the Scanner cannot scan after."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._run(self._stop())
        finally:
            self._loop = self._thread = self._endpoints = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro` in the Scanner's loop, the scan's loggers quiet while it runs."""
        assert self._loop is not None
        with quiet_logs():
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            try:
                return future.result()
            except ServerError as error:
                raise ServerStartError(str(error)) from error
            except BaseException:
                future.cancel()  # Ctrl-C while waiting: the scan stops too
                raise

    async def _start(self) -> Endpoints:
        from apps.scan.session import scan_endpoints, workspace

        self._workspace = await self._stack.enter_async_context(workspace())
        run_dir = self._workspace / "run"
        return await self._stack.enter_async_context(
            scan_endpoints(run_dir, triton_url=self._triton_url)
        )

    async def _scan(
        self, root: Path, progress: ProgressCallback | None, scratch: Path
    ) -> ScanResult:
        # Imported once a private Triton is starting (~1 s of imports, overlapping it).
        from apps.scan.core import scan

        assert self._endpoints is not None
        options = ScanOptions(
            workers=self._workers or ScanOptions.workers,  # one per CPU
            in_flight=self._in_flight,
            progress=False,
            on_progress=progress,
        )
        try:
            return await scan(root, self._endpoints, scratch, options)
        finally:  # the working copies of this scan
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _stop(self) -> None:
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:  # a scan given up (Ctrl-C)
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._stack.aclose()
        await asyncio.get_running_loop().shutdown_default_executor()
