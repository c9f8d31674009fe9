"""Natural batching: requests that arrive while a call is in flight go together."""

from __future__ import annotations

import asyncio

import pytest

from dedup.batching import NaturalBatcher


async def settle() -> None:
    """Let every ready task run until all wait (a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Dependency:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def run(self, batch: list[int]) -> list[int]:
        self.calls.append(batch)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [x * 10 for x in batch]


async def test_a_lone_request_goes_at_once_and_later_ones_go_together() -> None:
    dep = Dependency()
    batcher = NaturalBatcher(dep.run, max_batch=3)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    assert dep.calls == [[1]]  # no waiting for company
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(2, 7)]
    await settle()
    dep.release.set()
    assert await first == 10
    assert [await t for t in rest] == [20, 30, 40, 50, 60]
    assert dep.calls == [[1], [2, 3, 4], [5, 6]]


async def test_a_failed_batch_fails_every_request_in_it() -> None:
    dep = Dependency(fail=ConnectionError("down"))
    batcher = NaturalBatcher(dep.run)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await settle()
    dep.release.set()
    for task in tasks:
        with pytest.raises(ConnectionError):
            await task
    dep.fail = None  # and the next requests go through
    assert await batcher.submit(4) == 40


async def test_a_cancelled_request_is_left_out() -> None:
    dep = Dependency()
    batcher = NaturalBatcher(dep.run)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    gone = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(3))
    await settle()
    gone.cancel()
    dep.release.set()
    assert (await first, await kept) == (10, 30)
    assert dep.calls == [[1], [3]]


async def test_a_wrong_number_of_results_is_an_error() -> None:
    async def short(batch: list[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="0 results for 1"):
        await NaturalBatcher(short).submit(1)
