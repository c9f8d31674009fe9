"""Checks scripts/chart.sh (make chart) runs besides helm, kubeconform and promtool.

    python scripts/chart_checks.py stage CHART DEST          copy a chart for lint/template
    python scripts/chart_checks.py rules RENDERED OUT        PrometheusRule groups -> rule file
    python scripts/chart_checks.py dashboard JSON...         parse and check dashboards
    python scripts/chart_checks.py dockerfiles ROOT NAME...  check ./Dockerfile, the one for
                                                             every service, and its wiring
    python scripts/chart_checks.py settings RENDERED...      every service's rendered env
                                                             passes its settings class
    python scripts/chart_checks.py wiring RENDERED...        the rendered topics chain the
                                                             stages as apps.pipeline does

`rules`, `settings` and `wiring` need PyYAML (scripts/install_chart_tools.sh installs it into
.tools/py), `settings` and `wiring` also the project's venv; the other commands use the standard
library only. Run from the repository root with PYTHONPATH=.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.chart.metric_names import dashboard_metric_names, dashboard_queries, stage_chart

# The default port of each service (DEDUP_<SERVICE>_HTTP_PORT's default, the image's PORT).
SERVICE_PORTS = {
    "hasher": 9101,
    "verifier": 9102,
    "embedder": 9103,
    "matcher": 9104,
    "ranker": 9105,
    "ingest": 9106,
}


def cmd_stage(chart: str, dest: str) -> int:
    dropped = stage_chart(Path(chart), Path(dest))
    for name in dropped:
        print(
            f"note: optional dependency {name!r} is not vendored (charts/{name}-*.tgz); "
            "checked without it. `helm dependency build charts/dedup` fetches it."
        )
    return 0


def cmd_rules(rendered: str, out: str) -> int:
    """Write the groups of every PrometheusRule in a rendered manifest as one rule file."""
    import yaml  # type: ignore[import-untyped,import-not-found,unused-ignore]

    groups: list[Any] = []
    with open(rendered, encoding="utf-8") as handle:
        for document in yaml.safe_load_all(handle):
            if isinstance(document, dict) and document.get("kind") == "PrometheusRule":
                groups.extend(document["spec"]["groups"])
    if not groups:
        print(f"{rendered}: no PrometheusRule", file=sys.stderr)
        return 1

    def literal(dumper: Any, text: str) -> Any:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    yaml.SafeDumper.add_representer(str, literal)
    Path(out).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
    alerts = sum(len(group["rules"]) for group in groups)
    print(f"{out}: {len(groups)} groups, {alerts} rules")
    return 0


def check_dashboard(path: Path) -> list[str]:
    problems: list[str] = []
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return [f"{path}: not JSON: {error}"]
    for key in ("uid", "title", "panels", "schemaVersion", "templating"):
        if key not in dashboard:
            problems.append(f"{path}: no {key!r}")
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        problems.append(f"{path}: no 'datasource' template variable")
    ids: set[int] = set()
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    for panel in panels:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"{path}: panel {title!r}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id", -1))
        if "gridPos" not in panel:
            problems.append(f"{path}: panel {title!r}: no gridPos")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{path}: panel {title!r}: no targets")
        for target in targets:
            expr = target.get("expr", "")
            if not expr:
                problems.append(f"{path}: panel {title!r}: a target without expr")
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                problems.append(f"{path}: panel {title!r}: unbalanced brackets in {expr!r}")
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid != "${datasource}":
                problems.append(f"{path}: panel {title!r}: datasource is not ${{datasource}}")
    for query in dashboard_queries(dashboard):
        for name in re.findall(r"(?<![A-Za-z0-9_:$])([a-z][a-z0-9_]*_(?:total|seconds))\b", query):
            if not name.startswith("dedup_"):
                problems.append(f"{path}: {name} is not a dedup_ metric")
    if not problems:
        names = sorted(dashboard_metric_names(dashboard))
        print(f"{path}: {len(panels)} panels, {len(names)} metrics: {' '.join(names)}")
    return problems


def cmd_dashboard(paths: list[str]) -> int:
    problems = [p for path in paths for p in check_dashboard(Path(path))]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


_SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|CONNECTION_STRING|ACCESS_KEY|API_KEY)", re.I)


def dockerfile_problems(path: Path) -> list[str]:
    """What hadolint does not know about our Dockerfile's contract."""
    text = path.read_text()
    # Join continuation lines; drop comments.
    logical = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in logical.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    problems: list[str] = []
    args: dict[str, str] = {}
    declared: set[str] = set()
    users: list[str] = []
    stages = 0
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG":
            declared.add(rest.split("=")[0].strip())
            if "=" in rest:
                key, _, value = rest.partition("=")
                args.setdefault(key.strip(), value.strip().strip('"'))
        if word in ("ARG", "ENV") and _SECRETISH.search(rest.split("=")[0].split()[0]):
            problems.append(f"{path}: {word} {rest.split('=')[0]} looks like a secret")
        if word == "FROM":
            stages += 1
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), image)
            if "@sha256:" not in image:
                tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
                if not tag or tag == "latest" or not re.search(r"\d", tag):
                    problems.append(f"{path}: base image {image} is not pinned to a version tag")
        if word == "USER":
            users.append(rest.strip())
        if word == "ADD":
            problems.append(f"{path}: ADD (use COPY)")
    if stages < 2:
        problems.append(f"{path}: not multi-stage (builder + runtime)")
    if not users:
        problems.append(f"{path}: no USER")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or int(user) == 0:
            problems.append(f"{path}: the final USER {users[-1]} is not a numeric non-root uid")
        elif user != "10001":
            problems.append(f"{path}: USER {user}: the chart runs as 10001")
    for arg in ("SERVICE", "PORT"):
        if arg not in declared:
            problems.append(f"{path}: no `ARG {arg}` (one Dockerfile for every service)")
        elif arg in args:
            problems.append(f"{path}: `ARG {arg}` has a default: every build names its own")
    entry = 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/dedup-service"]'
    if entry not in lines:
        problems.append(f"{path}: no `{entry}` (tini as PID 1 forwards SIGTERM)")
    if "EXPOSE ${PORT}" not in lines:
        problems.append(f"{path}: no `EXPOSE ${{PORT}}`")
    if not re.search(r"pip install [^\n]*-c requirements\.lock[^\n]* \.(\s|$)", logical):
        problems.append(f"{path}: the builder does not `pip install -c requirements.lock .`")
    return problems


def wiring_problems(root: Path, names: list[str]) -> list[str]:
    """Each service's port agrees in its settings, images/lib.sh (the build args) and here;
    it has an entry point; and no Dockerfile of its own is left beside the shared one."""
    problems: list[str] = []
    lib = (root / "images" / "lib.sh").read_text()
    built = {name: int(port) for name, port in re.findall(r"\[(\w+)\]=(\d+)", lib)}
    if built != {name: SERVICE_PORTS[name] for name in names}:
        problems.append(f"images/lib.sh SERVICE_PORTS {built} != {SERVICE_PORTS}")
    for name in names:
        service = root / "services" / name
        if not (service / "__main__.py").is_file():
            problems.append(f"{service}: no __main__.py for `python -m services.{name}`")
        if (service / "Dockerfile").exists():
            problems.append(f"{service}/Dockerfile: the services share ./Dockerfile (ARG SERVICE)")
        settings = (service / "settings.py").read_text()
        match = re.search(r"http_port: int = (?:Field\()?(\d+)", settings)
        if not match or int(match[1]) != SERVICE_PORTS[name]:
            found = match[1] if match else "none"
            problems.append(
                f"{service}/settings.py: http_port default {found} != {SERVICE_PORTS[name]}"
            )
    return problems


def cmd_dockerfiles(root: str, names: list[str]) -> int:
    path = Path(root) / "Dockerfile"
    problems = dockerfile_problems(path) if path.is_file() else [f"{path}: missing"]
    problems += wiring_problems(Path(root), names)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(
            f"Dockerfile for {len(names)} services: pinned, multi-stage, USER 10001, "
            "ARG SERVICE/PORT, tini; ports agree with the settings and images/lib.sh"
        )
    return 1 if problems else 0


def rendered_settings(rendered: str) -> dict[str, dict[str, str]]:
    """service -> the DEDUP_<SERVICE>_* values its Deployment sets (not those from Secrets)."""
    import yaml  # type: ignore[import-untyped,import-not-found,unused-ignore]

    found: dict[str, dict[str, str]] = {}
    with open(rendered, encoding="utf-8") as handle:
        for document in yaml.safe_load_all(handle):
            if not isinstance(document, dict) or document.get("kind") != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                for entry in container.get("env") or []:
                    match = re.fullmatch(r"DEDUP_([A-Z]+)_\w+", entry.get("name", ""))
                    if match and "value" in entry:
                        service = match.group(1).lower()
                        found.setdefault(service, {})[entry["name"]] = str(entry["value"])
    return found


# Each service's settings class, loaded as the service loads it (dedup.settings.load_settings).
_LOAD = (
    "import importlib, sys; from pydantic_settings import BaseSettings; "
    "from dedup.settings import load_settings; "
    "m = importlib.import_module(f'services.{sys.argv[1]}.settings'); "
    "prefix = f'DEDUP_{sys.argv[1].upper()}_'; "
    "(cls,) = {c for c in vars(m).values() if isinstance(c, type) and issubclass(c, BaseSettings)"
    " and c.model_config.get('env_prefix') == prefix}; load_settings(cls)"
)


def cmd_settings(paths: list[str]) -> int:
    """Start-up validation of every service's settings, with the env the chart renders: a
    bad default (a resource name, a limit) fails here, not as a crash-looping pod."""
    failed = 0
    for rendered in paths:
        for service, env in sorted(rendered_settings(rendered).items()):
            clean = {k: v for k, v in os.environ.items() if not k.startswith("DEDUP_")}
            run = subprocess.run(
                [sys.executable, "-c", _LOAD, service],
                env=clean | env,
                capture_output=True,
                text=True,
                check=False,
            )
            name = f"{Path(rendered).name}: {service}"
            if run.returncode:
                failed += 1
                print(f"{name}: {run.stderr.strip()}", file=sys.stderr)
            else:
                print(f"{name}: {len(env)} settings valid")
    return 1 if failed else 0


def effective_topics(rendered: str) -> list[tuple[str, str, str]]:
    """(service, input topic, output topic) in flow order, as the rendered Deployments set
    them or, where they do not, as the service's settings default them."""
    from apps.pipeline import PIPELINE

    env = rendered_settings(rendered)
    chain = []
    for stage in PIPELINE:
        own = env.get(stage.name, {})
        prefix = f"DEDUP_{stage.name.upper()}_"
        chain.append(
            (
                stage.name,
                own.get(f"{prefix}INPUT_TOPIC", stage.input_topic),
                own.get(f"{prefix}OUTPUT_TOPIC", stage.output_topic),
            )
        )
    return chain


def cmd_wiring(paths: list[str]) -> int:
    """Each stage of a rendered chart reads the topic the stage before it writes."""
    failed = 0
    for rendered in paths:
        chain = effective_topics(rendered)
        for (before, _, wrote), (after, reads, _) in itertools.pairwise(chain):
            if reads != wrote:
                failed += 1
                print(
                    f"{Path(rendered).name}: {after} reads {reads!r}, {before} writes {wrote!r}",
                    file=sys.stderr,
                )
        if not failed:
            print(f"{Path(rendered).name}: " + " -> ".join(f"{n}" for n, _, _ in chain))
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "stage":
        return cmd_stage(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "rules":
        return cmd_rules(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "dashboard":
        return cmd_dashboard(argv[2:])
    if len(argv) >= 3 and argv[1] == "settings":
        return cmd_settings(argv[2:])
    if len(argv) >= 3 and argv[1] == "wiring":
        return cmd_wiring(argv[2:])
    if len(argv) >= 4 and argv[1] == "dockerfiles":
        return cmd_dockerfiles(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
