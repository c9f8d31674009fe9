"""Every failure dedup must survive, one per case, on the private stack: ~100 photos with
duplicates streamed through `dedup ingest watch` and the five services while one thing
goes wrong. Each case must end as the undisturbed run did: every image decided, the
same clusters and kept copies, no duplicate intermediate record, nothing dead-lettered
but the poison (with its headers), no process that exited unasked, a clean SIGTERM.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from apps.outcomes import own_decisions
from apps.pipeline import PIPELINE
from tests.faults.conftest import RUN_DIR, TABLE
from tests.faults.harness import (
    Case,
    Outcome,
    away,
    poison,
    run_case,
    sigkill,
    stage_outputs,
)
from tests.faults.stack import PrivateStack
from tests.support.clusters import partition

OUTAGE_SECONDS = 30
BROKER_OUTAGE_SECONDS = 35
# "A few dozen" lines per service for a whole case, whatever the outage.
MAX_LOG_LINES = 60
DLQ_HEADERS = {"dedup-error", "dedup-error-kind", "dedup-stage", "dedup-source-topic"}

CASES = [
    *(Case(f"SIGKILL {name}", sigkill(name, after)) for name, after in stage_outputs().items()),
    Case(f"broker away {BROKER_OUTAGE_SECONDS} s", away("kafka", BROKER_OUTAGE_SECONDS)),
    Case(f"Milvus away {OUTAGE_SECONDS} s", away("milvus", OUTAGE_SECONDS)),
    Case(f"Triton away {OUTAGE_SECONDS} s", away("triton", OUTAGE_SECONDS)),
    Case(f"Azurite away {OUTAGE_SECONDS} s", away("azurite", OUTAGE_SECONDS)),
    Case("poison on every input topic", poison=True),
    Case("two replicas of every stage but the ranker", replicas=2),
]
HEADER = (
    "| case | wall s | fault at s | over at s | all decided at s | recovery s | retries "
    "| dup records | DLQ | crashes | most log lines |"
)
HEADER_RULE = "|" + "---|" * (HEADER.count("|") - 1)


def run(stack: PrivateStack, case: Case) -> Outcome:
    tag = uuid.uuid4().hex[:8]
    slug = "".join(c if c.isalnum() else "-" for c in case.name.lower())
    return asyncio.run(run_case(stack, case, tag, RUN_DIR / "logs" / slug))


def row(o: Outcome) -> str:
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    dead = sum(len(v) for v in o.dead_letters.values())
    return (
        f"| {o.case.name} | {o.wall_seconds:.1f} | {num(o.fault_at)} | {num(o.fault_over)} "
        f"| {num(o.all_decided)} | {num(o.recovery_seconds)} | {o.retries:.0f} "
        f"| {sum(o.duplicates.values())} | {dead} | {sum(o.crashes.values())} "
        f"| {max(o.log_lines.values())} |"
    )


@pytest.fixture(scope="module")
def undisturbed(stack: PrivateStack) -> Outcome:
    outcome = run(stack, Case("undisturbed"))
    TABLE.extend([HEADER, HEADER_RULE, row(outcome)])
    assert_sound(outcome)
    return outcome


def assert_sound(o: Outcome) -> None:
    """What every run must show, disturbed or not."""
    where = f"logs in {o.log_dir}"
    assert own_decisions(o.decisions) >= set(o.ids), f"undecided images; {where}"
    assert sum(o.crashes.values()) == 0, f"exits nobody asked for: {o.crashes}; {where}"
    assert set(o.exit_codes.values()) == {0}, f"unclean SIGTERM: {o.exit_codes}; {where}"
    assert sum(o.duplicates.values()) == 0, f"duplicate records: {o.duplicates}; {where}"
    assert max(o.log_lines.values()) <= MAX_LOG_LINES, f"log lines: {o.log_lines}; {where}"
    for stage in PIPELINE:
        topic = next(t for t in o.dead_letters if t.endswith(stage.input_topic))
        records = o.dead_letters[topic]
        expected = poison(stage.name) if o.case.poison else {}
        assert {r.key: r.value for r in records} == expected, [r.headers for r in records]
        for r in records:
            assert set(r.headers) >= DLQ_HEADERS, r.headers
            assert r.headers["dedup-stage"].decode() == stage.name
            assert r.headers["dedup-source-topic"].decode() == topic


def test_undisturbed_run_finds_the_duplicates(undisturbed: Outcome) -> None:
    truth = partition({f.name: f.group for f in undisturbed.files})
    assert undisturbed.clusters() == truth


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(stack: PrivateStack, undisturbed: Outcome, case: Case) -> None:
    outcome = run(stack, case)
    TABLE.append(row(outcome))
    assert_sound(outcome)
    assert outcome.clusters() == undisturbed.clusters()
    assert outcome.kept() == undisturbed.kept()
