"""The ranker process on the real broker: decisions, then a restart that rebuilds its graph
from the decisions topic alone."""

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from apps.scan.servers import free_port
from dedup.runtime.kafka import Publisher, read_topic
from dedup.settings import KafkaSettings
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup
from services.ranker.tests.helpers import DUP, SIM, Img, group
from tests.integration.conftest import start_module

KEEP = DecisionKind.DECISION_KIND_KEEP
DUPLICATE = DecisionKind.DECISION_KIND_DUPLICATE
UNIQUE = DecisionKind.DECISION_KIND_UNIQUE
UNREADABLE = DecisionKind.DECISION_KIND_UNREADABLE

Decisions = dict[str, Decision]


def ranker_env(run_id: str) -> dict[str, str]:
    return {
        "DEDUP_RANKER_INPUT_TOPIC": f"test.{run_id}.matched",
        "DEDUP_RANKER_OUTPUT_TOPIC": f"test.{run_id}.decisions",
        "DEDUP_RANKER_GROUP_ID": f"ranker-{run_id}",
        "DEDUP_RANKER_HTTP_PORT": str(free_port()),
        "DEDUP_RANKER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DEDUP_RANKER_RESTORE_IDLE_SECONDS": "0.3",
        "DEDUP_RANKER_POLL_TIMEOUT_SECONDS": "0.2",
    }


async def publish(kafka: KafkaSettings, topic: str, groups: list[CandidateGroup]) -> None:
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([topic])
        for g in groups:
            await publisher.publish(topic, g.image_id, g)


async def latest(kafka: KafkaSettings, topic: str) -> Decisions:
    out: Decisions = {}
    async for record in read_topic(kafka, topic, idle_seconds=0.3):
        out[record.key] = Decision.FromString(record.value)
    return out


async def wait_for(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[Decisions], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
) -> Decisions:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        decisions = await latest(kafka, topic)
        if done(decisions):
            return decisions
        assert proc.poll() is None, f"the ranker exited:\n{log.read_text()[-3000:]}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"decisions incomplete:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


async def test_the_ranker_decides_and_rebuilds_its_state_after_a_restart(
    kafka: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    env = ranker_env(run_id)
    matched, decisions_topic = env["DEDUP_RANKER_INPUT_TOPIC"], env["DEDUP_RANKER_OUTPUT_TOPIC"]
    a, b, c, d, e, f = (
        Img(n, q) for n, q in zip("abcdef", (0.4, 0.3, 0.5, 0.5, 0.6, 0.9), strict=True)
    )
    await publish(
        kafka,
        matched,
        [
            group(a),
            group(b, [(a, DUP)]),
            group(c),
            group(d, status=ImageStatus.IMAGE_STATUS_CORRUPT, reason="not a JPEG after all"),
            group(e, [(c, SIM)]),
        ],
    )
    log = tmp_path / "ranker.log"
    first = start_module("services.ranker", env, log)
    try:
        seen = await wait_for(kafka, decisions_topic, lambda ds: len(ds) == 5, first, log)
        assert stop(first) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert {i: (x.kind, x.cluster_id, x.duplicate_of) for i, x in seen.items()} == {
        "a": (KEEP, "a", ""),
        "b": (DUPLICATE, "a", "a"),
        "c": (UNIQUE, "", ""),
        "d": (UNREADABLE, "", ""),
        "e": (UNIQUE, "", ""),
    }
    assert seen["d"].reason == "not a JPEG after all"
    assert list(seen["c"].similar) == ["e"]

    # f proves only b: a joins f's cluster through the b-a edge the first process saw,
    # which the second process knows only from the decisions topic.
    await publish(kafka, matched, [group(f, [(b, DUP)])])
    second = start_module("services.ranker", env, log)
    try:
        after = await wait_for(
            kafka, decisions_topic, lambda ds: ds.get("a", seen["a"]).kind == DUPLICATE, second, log
        )
        assert stop(second) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    assert {i: (x.kind, x.cluster_id, x.duplicate_of) for i, x in after.items()} == {
        "a": (DUPLICATE, "a", "f"),
        "b": (DUPLICATE, "a", "f"),
        "c": (UNIQUE, "", ""),
        "d": (UNREADABLE, "", ""),
        "e": (UNIQUE, "", ""),
        "f": (KEEP, "a", ""),
    }
    assert after["a"].reason == "via b: matcher: b~a"
    assert (
        '"restored 5 images (3 linked)' in log.read_text() or "restored 5 images" in log.read_text()
    )
