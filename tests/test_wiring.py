"""The wiring has one source, each service's settings (read by apps.pipeline): the stages
chain topic to topic, and every other copy of a port agrees with it. The chart's topics are
checked by `make chart` (scripts/chart_checks.py wiring, on the rendered manifests)."""

from __future__ import annotations

import json
from pathlib import Path

from apps.pipeline import INGEST_PORT, PIPELINE, default
from dedup import topics
from scripts import chart_checks
from services.ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[1]


def test_each_stage_reads_what_the_one_before_it_writes() -> None:
    inputs = [s.input_topic for s in PIPELINE]
    outputs = [default(IngestSettings, "output_topic"), *(s.output_topic for s in PIPELINE)]
    assert inputs == outputs[:-1]
    assert outputs[-1] == topics.DECISIONS
    assert len({s.http_port for s in PIPELINE} | {INGEST_PORT}) == len(PIPELINE) + 1


def test_the_local_prometheus_scrapes_every_service_on_its_port() -> None:
    targets = json.loads((ROOT / "stack" / "prometheus" / "targets.json").read_text())
    scraped = {t["labels"]["service"]: t["targets"] for t in targets}
    expected = {s.name: [f"127.0.0.1:{s.http_port}"] for s in PIPELINE}
    assert scraped == expected | {"ingest": [f"127.0.0.1:{INGEST_PORT}"]}


def test_the_chart_checks_know_every_services_port() -> None:
    expected = {s.name: s.http_port for s in PIPELINE} | {"ingest": INGEST_PORT}
    assert expected == chart_checks.SERVICE_PORTS
