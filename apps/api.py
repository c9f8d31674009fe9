"""The Python API: `apps.find_duplicates(folder) -> Result`, no Kafka and no Azure.

It is `dedup scan` without the terminal: the same engine (apps.scan, a private Triton
on free ports, the indexes in this process), the same rows (dedup.report.model), the
same JSON (`Result.to_json`, result.schema.json) and the same state on disk (what was
indexed is reused by the next scan of the folder: apps.scan.state). What it adds is what
a caller in Python needs: a typed, frozen result, a progress callback instead of the bar,
logs kept below WARNING out of the caller's logging, and exceptions instead of exit codes.
`Scanner` keeps the private Triton up across several scans, and the last scan's indexes
for `Scanner.check(image)`: one more image judged against the folder.

Importing this module is cheap (~0.15 s); the engine is imported by the first scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from apps.scan.output import to_json
from apps.scan.progress import ProgressCallback
from apps.scan.servers import Endpoints, ServerError
from apps.scan.session import ScanOptions
from apps.scan.state import default_dir, state_file
from dedup.report import model
from dedup.report.model import Cluster, Row, Totals

__all__ = ["Check", "Cluster", "Result", "Row", "Scanner", "ServerStartError", "find_duplicates"]

# The loggers a scan's code logs to below WARNING: the stages' own (dedup.*, services.*)
# and the libraries they run (grpc's channel set-up, Pillow's plugins, asyncio's loop).
# During a call, those the caller has not given a level log WARNING and up only.
QUIET_LOGGERS = ("dedup", "services", "grpc", "PIL", "asyncio", "tritonclient")
# The name of an image given to `Scanner.check` as bytes.
BYTES = "<bytes>"
# `state=`: True, the default place (apps.scan.state.default_dir); False, none; or a folder.
StateArg = bool | str | os.PathLike[str]

if TYPE_CHECKING:  # the engine is imported by the first scan
    from apps.scan.core import Checked, OpenScan

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
    # Files whose index pass came from the state (an earlier scan of the folder).
    reused: int = 0

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


@dataclass(frozen=True)
class Check:
    """What `Scanner.check` found for one image against the folder scanned last.

    `image`: its row, as if it were one more file of the folder: `decision` "duplicate"
    (a copy of a folder image: `kept`), "keep" (the folder holds copies of it and it would
    be the copy kept), "unique" or "unreadable", with its `reason` and `scores`.
    `duplicates`: the folder's images in its cluster (its copies), as the folder's scan
    judged them, by path; `kept`: the copy the cluster would keep (`image` itself or a
    folder image); `similar`: the folder's other shots of the same scene (never merged).
    """

    image: Row
    duplicates: tuple[Row, ...]
    kept: Row | None
    similar: tuple[Row, ...]

    @property
    def is_duplicate(self) -> bool:
        """Whether the folder holds a copy of it."""
        return bool(self.duplicates)


def result_of(
    root: Path, rows: list[Row], failures: Mapping[str, str], seconds: float, reused: int = 0
) -> Result:
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
        reused=reused,
    )


def check_of(checked: Checked, name: str, folder: Result) -> Check:
    """The Check of an image the engine judged (`name`: how it was given)."""
    d = checked.decision
    image = model.row(d)
    reason = "; ".join(x for x in (image.reason, checked.reason) if x)
    image = dataclasses.replace(
        image, container="", path=name, url="", working_copy_url="", reason=reason
    )
    by_id = {r.image_id: r for r in folder.images}
    grouped = (model.DUPLICATE, model.KEEP)
    members: list[Row] = []
    if image.decision in grouped:
        # Its cluster: the folder's images whose decision it changed into this cluster,
        # and those it left as they were, already in a cluster of this id.
        changed = {c.image_id: c for c in checked.changed if c.image_id in by_id}
        members = [
            by_id[i]
            for i, c in changed.items()
            if c.cluster_id == d.cluster_id and model.row(c).decision in grouped
        ]
        members += [r for r in folder.images if r.image_id not in changed
                    and r.cluster == d.cluster_id and r.decision in grouped]  # fmt: skip
        members.sort(key=lambda r: r.path)
    kept = image if image.decision == model.KEEP else by_id.get(d.duplicate_of)
    similar = sorted((by_id[i] for i in d.similar if i in by_id), key=lambda r: r.path)
    return Check(image, tuple(members), kept if members else None, tuple(similar))


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def state_dir(state: StateArg) -> Path | None:
    if state is True:
        return default_dir()
    if state is False:
        return None
    return Path(state)


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
    state: StateArg = True,
    fresh: bool = False,
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
    state: where what the index pass makes of each file is kept, and reused by the next
        scan of the folder (only new or changed files are decoded and embedded again; an
        interrupted scan resumes): True, the default place ($XDG_CACHE_HOME/dedup/scan,
        as `dedup scan`); a folder; False, none.
    fresh: ignore what the state holds (every file indexed anew, the state rewritten).

    Raises FileNotFoundError / NotADirectoryError for a bad folder and ValueError for a
    bad option (before any server starts), ServerStartError when Triton cannot start.
    Works inside a running event loop too (a notebook): the scan has a loop of its own.
    """
    root = checked_folder(folder)
    with Scanner(
        workers=workers, in_flight=in_flight, triton_url=triton_url, state=state, fresh=fresh
    ) as scanner:
        return scanner.scan(root, progress=progress)


class Scanner:
    """Several scans on one set of servers, and images checked against the last folder
    scanned: the private Triton starts once, when the Scanner is entered, and stops when
    it is left (find_duplicates starts one per call).

        with apps.Scanner() as scanner:
            first = scanner.scan("photos/2025")
            second = scanner.scan("photos/2026", progress=show)
            check = scanner.check("inbox/new.jpg")  # against photos/2026

    Each scan judges its own folder; the last one's indexes and clusters stay in memory
    (with its working copies on disk) until the next scan or the end, for `check`. The
    calls run one at a time in the Scanner's own thread and event loop; options and
    exceptions as find_duplicates'.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        in_flight: int = ScanOptions.in_flight,
        triton_url: str | None = None,
        state: StateArg = True,
        fresh: bool = False,
    ) -> None:
        if (workers is not None and workers < 1) or in_flight < 1:
            raise ValueError("workers and in_flight must be at least 1")
        self._workers, self._in_flight, self._triton_url = workers, in_flight, triton_url
        self._state, self._fresh = state_dir(state), fresh
        # The last scan, kept open for `check`: its result, its engine, how to close it.
        self._last: tuple[Result, OpenScan, contextlib.AsyncExitStack] | None = None
        self._bytes_checked = 0
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
        return self._run(self._scan(root, progress, self._workspace / f"scan-{self._scans}"))

    def check(self, image: str | os.PathLike[str] | bytes) -> Check:
        """One image (a file, or its bytes) judged against the folder scanned last, as if
        it were one more of its files; the folder's indexes and clusters are left as they
        were (each check is on its own). Raises FileNotFoundError for a missing file,
        RuntimeError before any scan."""
        if self._last is None:
            raise RuntimeError("no folder scanned yet: `scanner.scan(folder)` first")
        if isinstance(image, bytes | bytearray):
            return self._run(self._check(bytes(image), BYTES))
        name = os.fspath(image)
        if not Path(image).is_file():
            raise FileNotFoundError(f"no such file: {name}")
        return self._run(self._check(Path(image).absolute(), name))

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

    async def _scan(self, root: Path, progress: ProgressCallback | None, scratch: Path) -> Result:
        # Imported once a private Triton is starting (~1 s of imports, overlapping it).
        from apps.scan.core import open_scan

        assert self._endpoints is not None
        await self._forget_last()
        options = ScanOptions(
            workers=self._workers or ScanOptions.workers,  # one per CPU
            in_flight=self._in_flight,
            progress=False,
            on_progress=progress,
            state=state_file(root, self._state) if self._state else None,
            fresh=self._fresh,
        )
        stack = contextlib.AsyncExitStack()
        # The working copies of this scan go when it is closed.
        stack.push_async_callback(asyncio.to_thread, shutil.rmtree, scratch, True)
        try:
            done = await stack.enter_async_context(
                open_scan(root, self._endpoints, scratch, options)
            )
        except BaseException:
            await stack.aclose()
            raise
        r = done.result
        result = result_of(root, r.rows, r.failures, r.seconds, r.reused)
        self._last = (result, done, stack)
        return result

    async def _check(self, image: Path | bytes, name: str) -> Check:
        assert self._last is not None
        folder, done, _ = self._last
        if isinstance(image, Path):
            path = image
        else:
            self._bytes_checked += 1
            path = self._workspace / "checks" / str(self._bytes_checked)
            await asyncio.to_thread(write_file, path, image)
        return check_of(await done.checker.check(path, name), name, folder)

    async def _forget_last(self) -> None:
        if self._last is not None:
            stack, self._last = self._last[2], None
            await stack.aclose()

    async def _stop(self) -> None:
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:  # a scan given up (Ctrl-C)
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._forget_last()
        await self._stack.aclose()
        await asyncio.get_running_loop().shutdown_default_executor()
