"""Which `dedup_*` metrics the chart's dashboard and alerts use, and which a service exports.

The live check (every metric the dashboard and the rules use is exported by some running
service) compares `chart_metric_names(repo_root)` with `exposition_metric_names(text)` of
each service's /metrics:

    used = chart_metric_names(ROOT)                       # {name: {"dashboard", "rules"}}
    exported = set().union(*(exposition_metric_names(t) for t in metrics_texts))
    missing = sorted(set(used) - exported)

Both sides are normalised to the metric family: a histogram's `_bucket`, `_sum` and
`_count` series count as the histogram (`dedup_handler_seconds`); counters keep `_total`.

The rules are read from the chart as Helm renders it (`prometheusRule.enabled=true`), so
this needs helm (scripts/install_chart_tools.sh puts it in .tools/bin). No YAML library:
the rendered PrometheusRule is read with a small reader of its `expr:` fields.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

PREFIX = "dedup_"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![A-Za-z0-9_:$])(dedup_[A-Za-z0-9_:]*)")
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)")


def base_metric_name(name: str) -> str:
    """The family a series belongs to: strip a histogram's _bucket/_sum/_count suffix."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def promql_metric_names(expr: str) -> set[str]:
    """The `dedup_*` metric families a PromQL expression (or a Grafana query) reads.

    String literals, label matchers and label lists (`by (...)`, `on (...)`, ...) are
    dropped first, so label names and values are not taken for metric names.
    """
    without_strings = _STRING.sub('""', expr)
    without_matchers = _MATCHERS.sub("{}", without_strings)
    without_labels = _LABEL_LISTS.sub(r"\1 ()", without_matchers)
    return {base_metric_name(match) for match in _NAME.findall(without_labels)}


def dashboard_queries(dashboard: Any) -> list[str]:
    """Every query of a Grafana dashboard: panel targets' `expr` and template variables'
    `query`/`definition`, at any depth (rows, nested panels, library panels inline)."""
    found: list[str] = []

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, Mapping):
            for child_key, child in node.items():
                walk(child, child_key)
        elif isinstance(node, list):
            for child in node:
                walk(child, key)
        elif isinstance(node, str) and key in ("expr", "query", "definition"):
            found.append(node)

    walk(dashboard, None)
    return found


def dashboard_metric_names(dashboard: Any) -> set[str]:
    """The `dedup_*` metric families a dashboard (parsed JSON) queries."""
    names: set[str] = set()
    for query in dashboard_queries(dashboard):
        names |= promql_metric_names(query)
    return names


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def yaml_exprs(text: str) -> list[str]:
    """The values of every `expr:` key in YAML text (e.g. a rendered PrometheusRule).

    Handles plain and quoted scalars and block scalars (`|`, `|-`, `>`, ...), which is
    what Helm renders; enough for rule files, not a general YAML reader.
    """
    lines = text.splitlines()
    exprs: list[str] = []
    i = 0
    key = re.compile(r"^(\s*)(?:-\s+)?expr:\s*(.*?)\s*$")
    while i < len(lines):
        match = key.match(lines[i])
        i += 1
        if not match:
            continue
        value = match.group(2)
        if value.startswith(("|", ">")):
            block: list[str] = []
            parent = _indent(lines[i - 1])
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > parent):
                block.append(lines[i])
                i += 1
            width = min((_indent(b) for b in block if b.strip()), default=0)
            joiner = "\n" if value.startswith("|") else " "
            exprs.append(joiner.join(b[width:] for b in block).strip())
        elif value.startswith('"'):
            exprs.append(json.loads(value))
        elif value.startswith("'"):
            exprs.append(value[1:-1].replace("''", "'"))
        elif value and not value.startswith("#"):
            exprs.append(value)
    return exprs


def rules_metric_names(rendered: str) -> set[str]:
    """The `dedup_*` metric families the `expr`s of rendered rules read."""
    names: set[str] = set()
    for expr in yaml_exprs(rendered):
        names |= promql_metric_names(expr)
    return names


def exposition_metric_names(text: str, declared: bool = True) -> set[str]:
    """The `dedup_*` metric families in a Prometheus text exposition (a /metrics body).

    Sample lines count; with `declared`, so do `# TYPE` lines, because a labelled metric
    that has not been used yet (no DLQ message so far) is declared but has no samples.
    """
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and declared:
            parts = line.split()
            if len(parts) >= 3:
                names.add(base_metric_name(parts[2]))
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            if match:
                names.add(base_metric_name(match.group(1)))
    return {name for name in names if name.startswith(PREFIX)}


# ---- rendering the chart --------------------------------------------------------------


def _dependency_blocks(lines: list[str]) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end, name, optional) of each entry under the top-level `dependencies:`."""
    try:
        top = next(i for i, line in enumerate(lines) if line.rstrip() == "dependencies:")
    except StopIteration:
        return
    end = next(
        (i for i in range(top + 1, len(lines)) if lines[i] and not lines[i][0].isspace()),
        len(lines),
    )
    starts = [i for i in range(top + 1, end) if lines[i].lstrip().startswith("- ")]
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else end
        # Comments just above the next entry belong to it.
        while stop - 1 > start and lines[stop - 1].lstrip().startswith("#"):
            stop -= 1
        entry = "\n".join(lines[start:stop])
        name = re.search(r"name:\s*['\"]?([\w.-]+)", entry)
        optional = re.search(r"^\s*-?\s*(condition|tags):", entry, re.MULTILINE) is not None
        yield start, stop, name.group(1) if name else "", optional


def stage_chart(src: Path, dest: Path) -> list[str]:
    """Copy a chart to `dest`, leaving out optional dependencies that are not vendored.

    `helm lint` and `helm template` refuse a chart whose Chart.yaml lists a dependency
    missing from charts/, even one whose condition is false. Optional ones (with a
    condition or tags) that nobody fetched (`helm dependency build`) are dropped from the
    copy's Chart.yaml; a required missing one raises. Returns the names dropped.
    """
    shutil.copytree(src, dest)
    chart_yaml = dest / "Chart.yaml"
    lines = chart_yaml.read_text().splitlines()
    vendored = {p.name for p in (src / "charts").glob("*")} if (src / "charts").is_dir() else set()
    dropped: list[str] = []
    drop_ranges: list[tuple[int, int]] = []
    blocks = list(_dependency_blocks(lines))
    for start, stop, name, optional in blocks:
        if any(v == name or re.fullmatch(rf"{re.escape(name)}-.+\.tgz", v) for v in vendored):
            continue
        if not optional:
            raise RuntimeError(f"required dependency {name!r} is missing: helm dependency build")
        dropped.append(name)
        drop_ranges.append((start, stop))
    if blocks and len(drop_ranges) == len(blocks):
        # Nothing left: drop the `dependencies:` key as well.
        top = next(i for i, line in enumerate(lines) if line.rstrip() == "dependencies:")
        drop_ranges.append((top, top + 1))
    keep = [
        line
        for i, line in enumerate(lines)
        if not any(start <= i < stop for start, stop in drop_ranges)
    ]
    chart_yaml.write_text("\n".join(keep) + "\n")
    return dropped


def render_chart(
    helm: Path,
    chart: Path,
    values: Iterable[Path] = (),
    sets: Iterable[str] = (),
    show_only: str | None = None,
) -> str:
    """`helm template` of a chart (staged first, see stage_chart); returns the manifests."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / chart.name
        stage_chart(chart, staged)
        cmd = [str(helm), "template", "dedup", str(staged)]
        for path in values:
            cmd += ["--values", str(path)]
        for item in sets:
            cmd += ["--set", item]
        if show_only:
            cmd += ["--show-only", show_only]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def chart_metric_names(root: Path, helm: Path | None = None) -> dict[str, set[str]]:
    """Every `dedup_*` metric family the chart's dashboards and alert rules use.

    Returns {family: {"dashboard", "rules"}} (where each one is used). `root` is the
    repository root; helm defaults to .tools/bin/helm there, then to `helm` on PATH.
    """
    chart = root / "charts" / "dedup"
    if helm is None:
        local = root / ".tools" / "bin" / "helm"
        found = local if local.exists() else shutil.which("helm")
        if found is None:
            raise FileNotFoundError("helm not found: run scripts/install_chart_tools.sh")
        helm = Path(found)
    used: dict[str, set[str]] = {}
    for path in sorted((chart / "dashboards").glob("*.json")):
        for name in dashboard_metric_names(json.loads(path.read_text())):
            used.setdefault(name, set()).add("dashboard")
    rendered = render_chart(
        helm,
        chart,
        sets=["prometheusRule.enabled=true"],
        show_only="templates/prometheusrule.yaml",
    )
    for name in rules_metric_names(rendered):
        used.setdefault(name, set()).add("rules")
    return used


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[2]
    for metric, where in sorted(chart_metric_names(repo).items()):
        print(f"{metric:45s} {', '.join(sorted(where))}")
