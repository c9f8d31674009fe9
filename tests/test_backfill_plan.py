"""bench.streaming's 3M back-fill plan: replicas from the measured CPU per image."""

import pytest

from bench.streaming import BACKFILL_IMAGES, BACKFILL_SECONDS, backfill_plan


def test_replicas_cover_the_back_fills_rate_at_three_quarters_of_each_request() -> None:
    cpu_ms = {"hasher": 60.0, "verifier": 2.0, "embedder": 10.0, "matcher": 100.0, "ranker": 3.0}
    plan = backfill_plan(cpu_ms)
    rate = BACKFILL_IMAGES / BACKFILL_SECONDS  # 34.7 images/s
    assert plan["hasher"]["cores"] == pytest.approx(rate * 0.060)  # 2.08 cores
    assert plan["hasher"]["replicas"] == 3  # of 1 CPU at 75 %: 2.25 cores
    assert plan["matcher"]["replicas"] == 3  # 3.47 cores of 2 CPU at 75 %: 4.5
    assert plan["verifier"]["replicas"] == 1
    for need in plan.values():
        assert need["replicas"] * need["per_replica_per_second"] >= rate
