"""The Python API: `dedup.find_duplicates(folder) -> Result`, no Kafka and no Azure.

It is `dedup scan` without the terminal: the same engine (dedup.scan, a private Triton
on free ports, the indexes in this process), the same rows (dedup.report.model) and the
same JSON (`Result.to_json`, result.schema.json). What it adds is what a caller in
Python needs: a typed, frozen result, a progress callback instead of the bar, logs kept
below WARNING out of the caller's logging, and exceptions instead of exit codes.

Importing this module is cheap; the engine is imported by the first call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dedup.report import model
from dedup.report.model import Cluster, Row, Totals
from dedup.scan.output import to_json
from dedup.scan.progress import ProgressCallback

__all__ = ["Cluster", "Result", "Row", "ServerStartError", "find_duplicates"]

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
    in_flight: int = 8,
    triton_url: str | None = None,
) -> Result:
    """Find the duplicate images under `folder` (recursively), as `dedup scan` does.

    progress: called as `progress(done, total, phase)` when each phase starts (done 0)
        and after each of its files; phases: "indexing" (decode and hash), "embedding",
        "matching" (each image judged against the whole folder). Called in the scan's
        thread; an exception from it ends the scan.
    workers: decoding threads (default: one per CPU this process may use).
    in_flight: images in flight at once (memory grows with it).
    triton_url: a running Triton's gRPC host:port (default: a private one, started on
        free ports and stopped at the end; it needs `make setup`).

    Raises FileNotFoundError / NotADirectoryError for a bad folder and ValueError for a
    bad option (before any server starts), ServerStartError when Triton cannot start.
    Works inside a running event loop too (a notebook): the scan then runs in a thread.
    """
    root = checked_folder(folder)
    if (workers is not None and workers < 1) or in_flight < 1:
        raise ValueError("workers and in_flight must be at least 1")
    # Imported here: the engine is large (the services, OpenCV, the Triton client).
    from dedup.cpus import available_cpus
    from dedup.scan.servers import ServerError
    from dedup.scan.session import ScanOptions, run_scan

    options = ScanOptions(
        workers=workers or available_cpus(),
        in_flight=in_flight,
        progress=False,
        on_progress=progress,
    )
    with quiet_logs():
        try:
            done = run_in_own_loop(lambda: run_scan(root, options, triton_url=triton_url))
        except ServerError as error:
            raise ServerStartError(str(error)) from error
    return result_of(root, done.rows, done.failures, done.seconds)


def run_in_own_loop(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(make()), or in a thread of its own when this thread already runs an
    event loop (asyncio.run refuses to nest: a notebook's cell runs inside one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dedup-scan") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
