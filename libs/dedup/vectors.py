"""Milvus: the shared store of per-image vectors (hashes, embeddings) and their search.

One client per process (no per-message connection set-up); every call is timed, and
"the server is not there" is mapped onto TransientError so the runtime waits it out.
The only module of the library that imports pymilvus (its settings: dedup.settings).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from pymilvus import AsyncMilvusClient
from pymilvus.exceptions import ErrorCode, MilvusException, MilvusUnavailableException

from dedup import metrics
from dedup.errors import TransientError
from dedup.logs import adopt_library_loggers
from dedup.settings import MilvusSettings

adopt_library_loggers()  # pymilvus has just installed a stderr handler of its own

T = TypeVar("T")
_log = logging.getLogger(__name__)

UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def open_milvus(settings: MilvusSettings) -> AsyncMilvusClient:
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    return AsyncMilvusClient(
        uri=settings.milvus_uri, token=token, timeout=settings.milvus_timeout_seconds
    )


class CollectionIndex(Protocol):
    """What a service's index on Milvus offers to be opened and closed."""

    async def ensure_collection(self) -> None: ...

    async def aclose(self) -> None: ...


IndexT = TypeVar("IndexT", bound=CollectionIndex)


@asynccontextmanager
async def opened_index(
    settings: MilvusSettings, make: Callable[[AsyncMilvusClient], IndexT]
) -> AsyncIterator[IndexT]:
    """The index `make` builds on a client of `settings`' Milvus, its collection made if
    missing; closed, then the client, however the block ends."""
    milvus = open_milvus(settings)
    try:
        index = make(milvus)
        await index.ensure_collection()
        try:
            yield index
        finally:
            await index.aclose()
    finally:
        await milvus.close()


def is_unavailable(error: BaseException) -> bool:
    """True when Milvus could not be reached or is overloaded (worth a retry)."""
    if isinstance(error, MilvusUnavailableException | ConnectionError | TimeoutError):
        return True
    if isinstance(error, grpc.RpcError):
        return getattr(error, "code", lambda: None)() in UNAVAILABLE
    if isinstance(error, MilvusException):
        return error.code == ErrorCode.RATE_LIMIT or "connect" in str(error).lower()
    return False


async def timed(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await one Milvus call, recording its latency and errors by operation."""
    started = time.perf_counter()
    try:
        return await call
    except Exception as error:
        metrics.MILVUS_ERRORS.labels(service, operation).inc()
        if is_unavailable(error):
            raise TransientError(f"milvus {operation}: {error}", dependency="milvus") from error
        raise
    finally:
        metrics.MILVUS_SECONDS.labels(service, operation).observe(time.perf_counter() - started)


# ---- flushing: a policy, not a flush per insert ---------------------------------------------


@dataclass(frozen=True)
class FlushPolicy:
    """When to ask Milvus to seal what a collection has taken in: after `rows` rows
    inserted since the last flush, or `seconds` after the oldest row not yet flushed,
    whichever comes first; 0 turns either off (both 0: never, Milvus seals by itself).

    A flush per insert would make one tiny segment per batch (each a compaction to come);
    never flushing leaves the newest rows in growing segments until the server's own
    seal policy (size, idle time) takes them, and a growing segment is searched without
    the collection's index. Milvus Lite keeps one growing segment for ever and answers a
    flush at once without changing it (bench/README.md, "The growth table").
    """

    rows: int = 0
    seconds: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.rows > 0 or self.seconds > 0


class FlushClock:
    """The policy's bookkeeping, without a clock or a client of its own (tested alone)."""

    def __init__(self, policy: FlushPolicy) -> None:
        self.policy = policy
        self.pending = 0  # rows inserted since the last flush began
        self.oldest: float | None = None  # when the oldest of them was inserted

    def added(self, rows: int, now: float) -> bool:
        """Count `rows` inserted at `now`; True when a flush is due."""
        if not self.policy.enabled or rows <= 0:
            return False
        self.pending += rows
        if self.oldest is None:
            self.oldest = now
        return self.due(now)

    def due(self, now: float) -> bool:
        if self.pending <= 0:
            return False
        if self.policy.rows > 0 and self.pending >= self.policy.rows:
            return True
        return (
            self.policy.seconds > 0
            and self.oldest is not None
            and now - self.oldest >= self.policy.seconds
        )

    def wait_seconds(self, now: float) -> float | None:
        """How long until the time limit makes a flush due (None: nothing to wait for)."""
        if self.pending <= 0 or self.policy.seconds <= 0 or self.oldest is None:
            return None
        return max(0.0, self.oldest + self.policy.seconds - now)

    def flushing(self) -> None:
        """A flush has begun: the rows counted so far are in it."""
        self.pending = 0
        self.oldest = None


class Flusher:
    """Flushes one collection by its policy, in the background: the insert that makes a
    flush due does not wait for it, and at most one flush is in flight (rows that come
    meanwhile count towards the next). A failed flush is logged and counted
    (dedup_milvus_errors_total{operation="flush"}), never raised into a message's
    handling: the rows are stored either way, only not sealed yet."""

    def __init__(
        self,
        client: AsyncMilvusClient,
        collection: str,
        policy: FlushPolicy,
        service: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._collection = collection
        self._clock_of = clock
        self._state = FlushClock(policy)
        self._service = service
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.flushes = 0  # flushes begun (for tests and benchmarks)

    def added(self, rows: int) -> None:
        """`rows` were just inserted (or upserted) into the collection."""
        if self._state.added(rows, self._clock_of()):
            self._begin()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is None:
            wait = self._state.wait_seconds(self._clock_of())
            if wait is not None:
                self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._state.due(self._clock_of()):
            self._begin()

    def _begin(self) -> None:
        if self._task is not None and not self._task.done():
            return  # the rows wait for the flush in flight to end (see _flushing)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = asyncio.create_task(self._flushing())

    async def _flushing(self) -> None:
        # Another round when rows that came in meanwhile make one due again.
        while self._state.due(self._clock_of()):
            self._state.flushing()
            self.flushes += 1
            try:
                await timed(self._service, "flush", flush(self._client, self._collection))
            except Exception as error:  # see the class's docstring
                _log.warning("milvus flush of %s failed: %s", self._collection, error)
        self._arm_timer()

    async def aclose(self) -> None:
        """Stop the timer and wait for a flush in flight (nothing new is begun)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def flush(client: AsyncMilvusClient, collection: str) -> None:
    """Ask Milvus to seal the collection's growing segments (it does not wait for them).

    pymilvus 2.5's AsyncMilvusClient has no flush of its own; its connection has."""
    method = getattr(client, "flush", None)
    if method is not None:
        await method(collection)
        return
    await client._get_connection().flush([collection])


# ---- writes: insert what is new, upsert only what is stored -------------------------------


def split_new(
    rows: Sequence[Mapping[str, Any]], stored_ids: Iterable[str], key: str = "id"
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """`rows` (one per id) split into (those whose id is not stored, those whose id is)."""
    stored = set(stored_ids)
    new = [row for row in rows if row[key] not in stored]
    known = [row for row in rows if row[key] in stored]
    return new, known


async def store_rows(
    client: AsyncMilvusClient,
    collection: str,
    rows: Sequence[Mapping[str, Any]],
    service: str,
    probe_field: str,
) -> int:
    """Store `rows` (one per id, key "id"), replacing a stored record of the same id; the
    number of rows written.

    Not one upsert of them all: Milvus Lite pays for an upsert with a scan of everything
    stored (an upsert of 1 or 32 new rows at 100k stored: ~80-95 ms of its CPU; an insert
    of 1: 2 ms; a get of 32 ids: 1.3 ms; bench/README.md, "The growth table"). So one get
    of the ids (`probe_field` a scalar field: Lite fails a get of a vector field on an
    empty collection), an insert of the new ones and an upsert of the rest (a redelivered
    image), which on a Milvus cluster costs one cheap primary-key get more than an upsert.

    Two replicas that insert the same new id at the same moment (a partition handed over
    while its old owner still works) leave two records of it; readers take one record per
    id (the hasher's and the embedder's searches do), and the next upsert or delete of the
    id replaces or removes both.
    """
    if not rows:
        return 0
    ids = [str(row["id"]) for row in rows]
    found = await timed(
        service,
        "get",
        client.get(collection, ids=ids, output_fields=[probe_field], consistency_level="Strong"),
    )
    new, known = split_new(rows, (str(row["id"]) for row in found))
    if new:
        await timed(service, "insert", client.insert(collection, [dict(r) for r in new]))
    if known:
        await timed(service, "upsert", client.upsert(collection, [dict(r) for r in known]))
    return len(rows)
