"""Unit tests of tests/chart/metric_names.py: the extraction, not the metric list.

The check that every metric the dashboard and the alerts use is exported by a running
service reads live /metrics and belongs with the end-to-end tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.chart.metric_names import (
    base_metric_name,
    chart_metric_names,
    dashboard_metric_names,
    dashboard_queries,
    exposition_metric_names,
    promql_metric_names,
    rules_metric_names,
    stage_chart,
    yaml_exprs,
)

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("dedup_handler_seconds_bucket", "dedup_handler_seconds"),
        ("dedup_handler_seconds_sum", "dedup_handler_seconds"),
        ("dedup_cluster_size_count", "dedup_cluster_size"),
        ("dedup_errors_total", "dedup_errors_total"),
        ("dedup_consumer_lag_messages", "dedup_consumer_lag_messages"),
    ],
)
def test_base_metric_name(name: str, base: str) -> None:
    assert base_metric_name(name) == base


def test_promql_names_from_functions_aggregations_and_histograms() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (service, le) "
        '(rate(dedup_handler_seconds_bucket{service=~"$service"}[$__rate_interval])))'
        " / on (service) group_left sum by (service) (dedup_inflight_messages)"
        " and time() - max(dedup_last_commit_timestamp_seconds) > 600"
    )
    assert promql_metric_names(expr) == {
        "dedup_handler_seconds",
        "dedup_inflight_messages",
        "dedup_last_commit_timestamp_seconds",
    }


def test_promql_ignores_label_values_strings_and_label_names() -> None:
    expr = (
        'sum by (dedup_fake_label) (rate(dedup_errors_total{kind!="dedup_not_a_metric",'
        "topic='dedup_nor_this'}[5m]))"
    )
    assert promql_metric_names(expr) == {"dedup_errors_total"}


def test_promql_ignores_other_prefixes() -> None:
    assert promql_metric_names("up + nv_inference_count + my_dedup_total") == set()


def test_dashboard_queries_walk_rows_targets_and_variables() -> None:
    dashboard = {
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "dedup_retries_total"}]}]},
            {"targets": [{"expr": "rate(dedup_images_total[5m])", "legendFormat": "x"}]},
        ],
        "templating": {
            "list": [
                {
                    "query": {"query": "label_values(dedup_messages_consumed_total, service)"},
                    "definition": "label_values(dedup_messages_consumed_total, service)",
                }
            ]
        },
    }
    assert len(dashboard_queries(dashboard)) == 4
    assert dashboard_metric_names(dashboard) == {
        "dedup_retries_total",
        "dedup_images_total",
        "dedup_messages_consumed_total",
    }


RENDERED = """\
---
# Source: dedup/templates/prometheusrule.yaml
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
spec:
  groups:
    - name: g
      rules:
        - alert: Block
          expr: |-
            sum(rate(dedup_dlq_messages_total[5m]))
              > 0
          for: 5m
          annotations:
            description: "mentions dedup_not_an_expr_total"
        - alert: Folded
          expr: >
            rate(dedup_triton_errors_total[5m])
            > 0
        - alert: Plain
          expr: dedup_inflight_messages > 10
        - alert: Quoted
          expr: "histogram_quantile(0.9, rate(dedup_milvus_request_seconds_bucket[5m])) > 1"
        - record: single
          expr: 'sum(dedup_consumer_lag_messages{topic=''t''})'
"""


def test_yaml_exprs_reads_block_folded_plain_and_quoted_scalars() -> None:
    assert yaml_exprs(RENDERED) == [
        "sum(rate(dedup_dlq_messages_total[5m]))\n  > 0",
        "rate(dedup_triton_errors_total[5m]) > 0",
        "dedup_inflight_messages > 10",
        "histogram_quantile(0.9, rate(dedup_milvus_request_seconds_bucket[5m])) > 1",
        "sum(dedup_consumer_lag_messages{topic='t'})",
    ]


def test_rules_metric_names_reads_only_exprs() -> None:
    assert rules_metric_names(RENDERED) == {
        "dedup_dlq_messages_total",
        "dedup_triton_errors_total",
        "dedup_inflight_messages",
        "dedup_milvus_request_seconds",
        "dedup_consumer_lag_messages",
    }


def test_exposition_names_from_samples_and_declarations() -> None:
    text = """\
# HELP dedup_dlq_messages_total Messages sent to a dead-letter topic
# TYPE dedup_dlq_messages_total counter
# HELP dedup_handler_seconds Time the stage's handler spent on one message
# TYPE dedup_handler_seconds histogram
dedup_handler_seconds_bucket{le="0.1",service="hasher"} 3.0
dedup_handler_seconds_count{service="hasher"} 3.0
dedup_handler_seconds_sum{service="hasher"} 0.12
# TYPE dedup_errors_created gauge
dedup_errors_created{service="hasher",kind="parse"} 1.7e+09
process_cpu_seconds_total 1.5
"""
    assert exposition_metric_names(text) == {
        "dedup_dlq_messages_total",
        "dedup_handler_seconds",
        "dedup_errors_created",
    }
    assert exposition_metric_names(text, declared=False) == {
        "dedup_handler_seconds",
        "dedup_errors_created",
    }


def test_stage_chart_drops_only_unvendored_optional_dependencies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "charts").mkdir(parents=True)
    (src / "charts" / "vendored-1.0.0.tgz").write_bytes(b"")
    (src / "Chart.yaml").write_text(
        "apiVersion: v2\n"
        "name: x\n"
        "dependencies:\n"
        "  # optional, not fetched\n"
        "  - name: milvus\n"
        '    version: "1.0.0"\n'
        "    condition: milvus.enabled\n"
        "  - name: vendored\n"
        '    version: "1.0.0"\n'
        "version: 0.1.0\n"
    )
    dropped = stage_chart(src, tmp_path / "dest")
    staged = (tmp_path / "dest" / "Chart.yaml").read_text()
    assert dropped == ["milvus"]
    assert "milvus" not in staged
    assert "  - name: vendored" in staged
    assert "version: 0.1.0" in staged


def test_stage_chart_refuses_a_missing_required_dependency(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "Chart.yaml").write_text("name: x\ndependencies:\n  - name: needed\n    version: 1\n")
    with pytest.raises(RuntimeError, match="needed"):
        stage_chart(src, tmp_path / "dest")


def test_the_charts_dashboard_and_rules_use_only_dedup_metrics() -> None:
    """The real files: something is extracted from both, all of it dedup_ families."""
    helm = HELM if HELM.exists() else shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not installed (scripts/install_chart_tools.sh)")
    used = chart_metric_names(ROOT, Path(helm))
    dashboard = json.loads((ROOT / "charts/dedup/dashboards/dedup.json").read_text())
    assert {name for name, where in used.items() if "dashboard" in where} == (
        dashboard_metric_names(dashboard)
    )
    assert any("rules" in where for where in used.values())
    assert all(name.startswith("dedup_") for name in used)
    assert not any(name.endswith(("_bucket", "_sum", "_count")) for name in used)
