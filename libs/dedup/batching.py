"""Batchers: items submitted by concurrent tasks become one call of a batch function.

`MicroBatcher` waits up to a delay for a batch to fill (Triton, Milvus upserts);
`NaturalBatcher` never waits and keeps one call in flight (the hasher's index searches).

The runtime hands a stage many messages at once (`concurrency` of them), and each handler
awaits one item at a time (an embedding, a Milvus upsert). Inference servers and vector
databases are far cheaper per item in batches, so `MicroBatcher.submit` parks the item
until `max_size` items are waiting or `max_delay_seconds` has passed since the first one,
then makes one call for all of them and hands each caller its own result.

A failed call fails every item of its batch with the same exception (a TransientError
stays one, so the runtime retries each message). A caller that is cancelled while waiting
simply drops out of its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchCall = Callable[[list[T]], Awaitable[Sequence[R]]]


class MicroBatcher(Generic[T, R]):
    def __init__(self, call: BatchCall[T, R], *, max_size: int, max_delay_seconds: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_delay_seconds < 0:
            raise ValueError("max_delay_seconds must not be negative")
        self._call = call
        self._max_size = max_size
        self._max_delay = max_delay_seconds
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        # Running batch calls, referenced so that they are not garbage-collected mid-call.
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The result of `call` for this item, computed in a batch with its neighbours."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_delay, self._flush)
        return await future

    async def aclose(self) -> None:
        """Send what is waiting now and wait for every batch in flight."""
        self._flush()
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        live = [(item, future) for item, future in batch if not future.done()]
        if not live:
            return
        try:
            results = await self._call([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch call returned {len(results)} results for {len(live)}")
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except Exception as error:
            for _, future in live:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)


class NaturalBatcher(Generic[T, R]):
    """Natural batching: no timer and no added latency. A request that arrives while the
    dependency is idle goes at once, alone; requests that arrive while a call is in flight
    wait for it and then go together, up to `max_batch`. Under load the batches grow by
    themselves, and one call at a time is in flight.
    """

    def __init__(
        self,
        run: BatchCall[T, R],
        max_batch: int = 32,
    ) -> None:
        """`run` answers a batch with one result per request, in order; if it raises,
        every request of the batch gets the exception (and is retried by its caller)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, request: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = [(r, f) for r, f in self._queue[: self._max_batch] if not f.cancelled()]
            del self._queue[: self._max_batch]
            if not batch:
                continue
            try:
                results = await self._run([r for r, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} requests")
            except asyncio.CancelledError:
                # Shutting down: nobody may wait forever on a batch that will not run.
                for _, future in batch + self._queue:
                    future.cancel()
                self._queue.clear()
                raise
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
