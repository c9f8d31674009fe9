"""The micro-batcher: concurrent submissions become one call, each caller gets its result."""

import asyncio

import pytest

from dedup.batching import MicroBatcher
from dedup.errors import TransientError


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


async def test_concurrent_items_share_one_call_and_get_their_own_results() -> None:
    call = Recorder()
    batcher = MicroBatcher(call, max_size=8, max_delay_seconds=0.01)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert call.calls == [[0, 1, 2, 3, 4]]


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    call = Recorder()
    # A delay far longer than the test: only the size can send the first batch promptly.
    batcher = MicroBatcher(call, max_size=3, max_delay_seconds=60)
    first = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    assert await asyncio.gather(*first) == [0, 10, 20]
    rest = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)
    await batcher.aclose()  # sends what waits
    assert await rest == 30
    assert call.calls == [[0, 1, 2], [3]]


async def test_a_lone_item_goes_after_the_delay() -> None:
    call = Recorder()
    batcher = MicroBatcher(call, max_size=100, max_delay_seconds=0)
    assert await batcher.submit(7) == 70
    assert call.calls == [[7]]


async def test_a_failed_call_fails_every_item_of_its_batch_with_the_same_error() -> None:
    batcher = MicroBatcher(Recorder(TransientError("down")), max_size=4, max_delay_seconds=0)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)


async def test_a_wrong_number_of_results_is_an_error_for_everyone() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = MicroBatcher(short, max_size=4, max_delay_seconds=0)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(2)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_cancelled_caller_drops_out_of_its_batch() -> None:
    call = Recorder()
    batcher = MicroBatcher(call, max_size=10, max_delay_seconds=0.01)
    gone = asyncio.create_task(batcher.submit(1))
    stays = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == 20
    assert call.calls == [[2]]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_size=0, max_delay_seconds=0)
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_size=1, max_delay_seconds=-1)
