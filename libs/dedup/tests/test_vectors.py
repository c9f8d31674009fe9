"""dedup.vectors without a Milvus: the flush policy, its background flusher, and the write
that inserts new ids and upserts only stored ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dedup.vectors import FlushClock, Flusher, FlushPolicy, split_new, store_rows


def test_a_policy_with_both_limits_off_never_flushes() -> None:
    clock = FlushClock(FlushPolicy())
    assert not clock.added(1_000_000, now=0.0)
    assert not clock.due(now=1e9)
    assert clock.wait_seconds(now=0.0) is None


def test_the_row_limit_makes_a_flush_due_and_a_flush_starts_the_count_again() -> None:
    clock = FlushClock(FlushPolicy(rows=100))
    assert not clock.added(60, now=0.0)
    assert clock.added(40, now=1.0)
    clock.flushing()
    assert clock.pending == 0
    assert not clock.added(99, now=2.0)
    assert clock.added(1, now=3.0)


def test_the_time_limit_counts_from_the_oldest_row_not_flushed() -> None:
    clock = FlushClock(FlushPolicy(seconds=10))
    assert not clock.added(1, now=100.0)
    assert clock.wait_seconds(now=104.0) == pytest.approx(6.0)
    assert not clock.added(1, now=109.0)  # a newer row does not move the deadline
    assert clock.due(now=110.0)
    clock.flushing()
    assert not clock.due(now=1e6)  # nothing inserted since
    assert clock.wait_seconds(now=1e6) is None


def test_nothing_inserted_counts_for_nothing() -> None:
    clock = FlushClock(FlushPolicy(rows=1, seconds=1))
    assert not clock.added(0, now=0.0)
    assert clock.oldest is None and clock.pending == 0


class FakeClient:
    """pymilvus 2.5's AsyncMilvusClient: no flush of its own, its connection has one.
    Records flushes; a flush takes as long as `release` is not set."""

    def __init__(self) -> None:
        self.flushes: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    def _get_connection(self) -> FakeConnection:
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    async def flush(self, collections: list[str]) -> None:
        self.client.flushes.append(collections)
        await self.client.release.wait()
        if self.client.fail:
            raise RuntimeError("flush refused")


async def test_the_flusher_flushes_in_the_background_one_at_a_time() -> None:
    client = FakeClient()
    client.release.clear()
    flusher = Flusher(client, "c", FlushPolicy(rows=10), "test")
    flusher.added(10)  # due: a flush begins, the caller does not wait for it
    await asyncio.sleep(0)
    assert client.flushes == [["c"]]
    flusher.added(25)  # due again, but one is in flight: these rows wait for it
    await asyncio.sleep(0)
    assert client.flushes == [["c"]]
    client.release.set()
    await asyncio.sleep(0.01)
    assert client.flushes == [["c"], ["c"]]  # the rows that came meanwhile, at once
    await flusher.aclose()
    assert flusher.flushes == 2


async def test_the_time_limit_flushes_without_another_insert() -> None:
    client = FakeClient()
    flusher = Flusher(client, "c", FlushPolicy(seconds=0.02), "test")
    flusher.added(1)
    assert client.flushes == []
    await asyncio.sleep(0.1)
    assert client.flushes == [["c"]]
    await flusher.aclose()


async def test_a_failed_flush_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient()
    client.fail = True
    flusher = Flusher(client, "c", FlushPolicy(rows=1), "test")
    flusher.added(1)
    await flusher.aclose()
    assert client.flushes == [["c"]]
    assert "flush of c failed" in caplog.text


async def test_close_stops_a_pending_timer() -> None:
    client = FakeClient()
    flusher = Flusher(client, "c", FlushPolicy(seconds=0.02), "test")
    flusher.added(1)
    await flusher.aclose()
    await asyncio.sleep(0.05)
    assert client.flushes == []


def test_rows_split_into_new_and_stored_ids() -> None:
    rows = [{"id": "a", "x": 1}, {"id": "b", "x": 2}, {"id": "c", "x": 3}]
    new, known = split_new(rows, ["b", "zzz"])
    assert [r["id"] for r in new] == ["a", "c"]
    assert [r["id"] for r in known] == ["b"]


class StoreClient:
    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.calls: list[tuple[str, list[str]]] = []

    async def get(self, collection: str, ids: list[str], **_: Any) -> list[dict[str, Any]]:
        self.calls.append(("get", ids))
        return [{"id": i, "e_tag": ""} for i in ids if i in self.stored]

    async def insert(self, collection: str, data: list[dict[str, Any]]) -> None:
        self.calls.append(("insert", [r["id"] for r in data]))

    async def upsert(self, collection: str, data: list[dict[str, Any]]) -> None:
        self.calls.append(("upsert", [r["id"] for r in data]))


async def test_store_rows_inserts_the_new_and_upserts_the_stored() -> None:
    client = StoreClient({"b"})
    rows = [{"id": "a"}, {"id": "b"}]
    assert await store_rows(client, "c", rows, "test", "e_tag") == 2
    assert client.calls == [("get", ["a", "b"]), ("insert", ["a"]), ("upsert", ["b"])]


async def test_store_rows_of_only_new_ids_never_upserts() -> None:
    client = StoreClient(set())
    await store_rows(client, "c", [{"id": "a"}], "test", "e_tag")
    assert client.calls == [("get", ["a"]), ("insert", ["a"])]
    assert await store_rows(client, "c", [], "test", "e_tag") == 0
