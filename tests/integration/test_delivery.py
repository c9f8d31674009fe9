"""Delivery on the real broker: kill -9 mid-stream, poison messages, SIGTERM, a
transaction left open; each output exactly once."""

import asyncio
import contextlib
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from apps.scan.servers import free_port
from dedup.runtime.kafka import (
    Outgoing,
    Publisher,
    client_options,
    committed_offsets,
    end_offsets,
    ensure_topics,
    make_producer,
    read_topic,
    send_transaction,
    stop_producer,
    until_offsets_visible,
)
from dedup.settings import KafkaSettings
from dedup.topics import dead_letter
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.groups_pb2 import CandidateGroup
from tests.integration.conftest import start_module


def relay_env(run_id: str, **extra: str) -> dict[str, str]:
    return {
        "DEDUP_RELAY_HTTP_PORT": str(free_port()),
        "DEDUP_RELAY_INPUT_TOPIC": f"test.{run_id}.in",
        "DEDUP_RELAY_OUTPUT_TOPIC": f"test.{run_id}.out",
        "DEDUP_RELAY_GROUP_ID": f"relay-{run_id}",
        "DEDUP_RELAY_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DEDUP_RELAY_RETRY_BACKOFF_SECONDS": "0.05",
        "DEDUP_RELAY_BATCH_SIZE": "20",
        "DEDUP_RELAY_CONCURRENCY": "4",
        **{f"DEDUP_RELAY_{k.upper()}": v for k, v in extra.items()},
    }


async def publish_events(kafka: KafkaSettings, topic: str, names: list[str | bytes]) -> None:
    """Publish a BlobEvent per name; raw bytes are published as they are (poison)."""
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([topic])
        for name in names:
            if isinstance(name, bytes):
                await publisher.publish(topic, "poison", name)
            else:
                await publisher.publish(topic, name, BlobEvent(image_id=name, blob_name=name))


async def output_ids(kafka: KafkaSettings, topic: str) -> list[str]:
    ids = []
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        group = CandidateGroup()
        group.ParseFromString(record.value)
        ids.append(group.image_id)
    return ids


async def wait_for_outputs(
    kafka: KafkaSettings, topic: str, at_least: int, proc: subprocess.Popen[bytes], log: Path
) -> list[str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ids = await output_ids(kafka, topic)
        if len(set(ids)) >= at_least:
            return ids
        assert proc.poll() is None, f"stage exited early:\n{log.read_text()[-3000:]}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"only {len(set(ids))} of {at_least} outputs:\n{log.read_text()[-3000:]}")


async def wait_until_produced(
    at_least: int, env: dict[str, str], proc: subprocess.Popen[bytes]
) -> None:
    """Poll the stage's own /metrics (fast) until it has produced `at_least` messages."""
    url = f"http://127.0.0.1:{env['DEDUP_RELAY_HTTP_PORT']}/metrics"
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if produced_total(await response.text()) >= at_least:
                        return
            await asyncio.sleep(0.02)
    raise AssertionError(f"the stage did not produce {at_least} messages in time")


def produced_total(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "dedup_messages_produced"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=90)


async def test_sigkill_mid_stream_loses_nothing_and_poison_goes_to_the_dlq(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    n = 400
    names: list[str | bytes] = [f"img-{i:04d}" for i in range(n)]
    names.insert(100, b"\xff\xff not a protobuf")  # cannot be parsed
    names.insert(250, "poison-250")  # parses, but the handler always fails on it
    env = relay_env(run_id, delay_seconds="0.05")
    topic_in, topic_out = f"test.{run_id}.in", f"test.{run_id}.out"
    await publish_events(kafka, topic_in, names)
    log = tmp_path / "relay.log"

    first = start_module("tests.support.relay", env, log)
    try:
        await wait_until_produced(40, env, first)
    finally:
        first.kill()  # SIGKILL: no flush, no commit
        first.wait()
    seen_before_kill = await output_ids(kafka, topic_out)
    assert len(set(seen_before_kill)) < n, "the stage finished before it was killed"

    second = start_module("tests.support.relay", env, log)
    try:
        await wait_for_outputs(kafka, topic_out, n, second, log)
        assert stop(second) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()

    # Exactly once, though the kill may have struck anywhere (mid-transaction included).
    ids = await output_ids(kafka, topic_out)
    assert sorted(ids) == [f"img-{i:04d}" for i in range(n)]
    dead = [r async for r in read_topic(kafka, dead_letter(topic_in), idle_seconds=0.3)]
    kinds = Counter(r.headers["dedup-error-kind"].decode() for r in dead)
    assert kinds == {"parse": 1, "permanent": 1}
    by_kind = {r.headers["dedup-error-kind"].decode(): r for r in dead}
    assert by_kind["parse"].value == b"\xff\xff not a protobuf"
    assert b"refusing poison-250" in by_kind["permanent"].headers["dedup-error"]
    assert by_kind["permanent"].headers["dedup-source-topic"] == topic_in.encode()
    # The graceful stop committed everything it consumed.
    assert await committed_offsets(kafka, f"relay-{run_id}", topic_in) == await end_offsets(
        kafka, topic_in
    )


async def test_sigterm_finishes_the_batch_so_nothing_is_redone(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    n = 400
    env = relay_env(run_id, delay_seconds="0.05")
    topic_in, topic_out = f"test.{run_id}.in", f"test.{run_id}.out"
    await publish_events(kafka, topic_in, [f"img-{i:04d}" for i in range(n)])
    log = tmp_path / "relay.log"

    first = start_module("tests.support.relay", env, log)
    await wait_until_produced(40, env, first)
    assert stop(first) == 0, log.read_text()[-3000:]
    produced = await output_ids(kafka, topic_out)
    committed_by_partition = await committed_offsets(kafka, f"relay-{run_id}", topic_in)
    committed = sum(max(0, offset) for offset in committed_by_partition.values())
    assert len(produced) < n, "the stage finished before it was stopped"
    assert committed == len(produced), "every output's input is committed, and nothing else"

    second = start_module("tests.support.relay", env, log)
    try:
        await wait_for_outputs(kafka, topic_out, n, second, log)
        assert stop(second) == 0
    finally:
        if second.poll() is None:
            second.kill()
    ids = await output_ids(kafka, topic_out)
    assert sorted(ids) == [f"img-{i:04d}" for i in range(n)], "no loss and no redelivery"


async def test_transient_failures_are_retried_not_dead_lettered(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    n = 30
    env = relay_env(run_id, transient_failures="2")
    topic_in, topic_out = f"test.{run_id}.in", f"test.{run_id}.out"
    await publish_events(kafka, topic_in, [f"img-{i:04d}" for i in range(n)])
    log = tmp_path / "relay.log"
    proc = start_module("tests.support.relay", env, log)
    try:
        ids = await wait_for_outputs(kafka, topic_out, n, proc, log)
        base = f"http://127.0.0.1:{env['DEDUP_RELAY_HTTP_PORT']}"
        async with aiohttp.ClientSession() as session:
            for probe in ("healthz", "readyz"):
                async with session.get(f"{base}/{probe}") as response:
                    assert response.status == 200, probe
            async with session.get(f"{base}/metrics") as response:
                metrics = await response.text()
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(ids) == [f"img-{i:04d}" for i in range(n)]
    assert [r async for r in read_topic(kafka, dead_letter(topic_in), idle_seconds=0.3)] == []
    # Every retry is counted; its log lines are not one per retry (one per outage).
    retries = [
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "dedup_retries_total"
    ]
    assert retries == [2 * n]


async def test_a_transaction_its_producer_never_committed_is_never_read(
    kafka: KafkaSettings, run_id: str
) -> None:
    topic = f"test.{run_id}.txn"
    await ensure_topics(kafka, [topic])
    records = [Outgoing(topic, f"img-{i}".encode(), b"v") for i in range(5)]
    tid = f"test-{run_id}"
    dead = make_producer(kafka, tid)
    await dead.start()
    await dead.begin_transaction()
    for o in records:
        await (await dead.send(o.topic, o.value, key=o.key))  # on the broker, acknowledged
    # ... and the process dies before its commit. The batch is redone by its successor:
    successor = make_producer(kafka, tid)
    await successor.start()
    try:
        await send_transaction(successor, records)
    finally:
        await stop_producer(successor)
        await stop_producer(dead)
    keys = [r.key async for r in read_topic(kafka, topic, idle_seconds=0.3)]
    assert sorted(keys) == [f"img-{i}" for i in range(5)]


async def test_a_commit_is_read_by_the_group_once_it_is_visible(
    kafka: KafkaSettings, run_id: str
) -> None:
    # A transaction's commit returns before the group reads its offsets: the next owner
    # of a partition given up at once would start before them (the two-replica fault
    # case published records twice). After the wait, the next owner reads each commit.
    topic, group = f"test.{run_id}.visible", f"visible-{run_id}"
    await ensure_topics(kafka, [topic])
    tp = TopicPartition(topic, 0)
    producer = make_producer(kafka, f"test-{run_id}")
    mine, next_owner = (
        AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **client_options(kafka))
        for _ in range(2)
    )
    for client in (producer, mine, next_owner):
        await client.start()
    try:
        for offset in range(1, 31):
            await send_transaction(producer, [Outgoing(topic, b"k", b"v")], {tp: offset}, group)
            await asyncio.wait_for(until_offsets_visible(mine, {tp: offset}), 10)
            assert await next_owner.committed(tp) == offset
    finally:
        await mine.stop()
        await next_owner.stop()
        await stop_producer(producer)
