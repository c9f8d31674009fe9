"""Natural batching: concurrent callers share one call to a slow dependency.

No timer and no added latency: a request that arrives while the dependency is idle goes
at once, alone; requests that arrive while a call is in flight wait for it and then go
together, up to `max_batch`. Under load the batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class Batcher(Generic[Request, Result]):
    def __init__(
        self,
        run: Callable[[list[Request]], Awaitable[Sequence[Result]]],
        max_batch: int = 32,
    ) -> None:
        """`run` answers a batch with one result per request, in order; if it raises,
        every request of the batch gets the exception (and is retried by its caller)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[Request, asyncio.Future[Result]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
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
