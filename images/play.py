"""The chart's pods for real: render charts/dedup with ci/podman-values.yaml, run its
Deployments with `podman kube play` on the host network, and watch every pod.

    python images/play.py [--ready-timeout S] [--keep]

1. `helm template` with charts/dedup/ci/podman-values.yaml (the local stack's ports on
   127.0.0.1, the images `make images` built, one HTTP port per service);
2. the Deployments go to `podman kube play --network host` (without their port mappings,
   which the host network has no use for: the probes name the port by number); what
   podman cannot play is listed and left to `make chart` (kubeconform, the settings
   check): Services (cluster networking), the ServiceAccount, the helm test Pod, and with
   other values ServiceMonitor, PrometheusRule, KEDA ScaledObject, PodDisruptionBudget, HPA;
3. every pod's container: running as uid 10001 with the chart's securityContext (read-only
   root filesystem, /tmp an emptyDir), /healthz 200, /readyz polled until ready (or, with
   the stack down, reported not ready);
4. `podman kube down`: every container stopped by SIGTERM within the grace period.

Run by images/play.sh (podman's flags, PyYAML from .tools/py); standard library + PyYAML.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,import-not-found,unused-ignore]
from containers import get, podman

ROOT = Path(__file__).resolve().parents[1]
HELM = os.environ.get("HELM", str(ROOT / ".tools" / "bin" / "helm"))
CHART = Path(os.environ.get("DEDUP_PLAY_CHART", ROOT / "charts" / "dedup"))
VALUES = ROOT / "charts" / "dedup" / "ci" / "podman-values.yaml"
OUT = ROOT / "out" / "play"


def render(extra: list[str]) -> list[dict[str, Any]]:
    OUT.mkdir(parents=True, exist_ok=True)
    rendered = subprocess.run(
        [HELM, "template", "dedup", str(CHART), "-n", "dedup", "--values", str(VALUES), *extra],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (OUT / "rendered.yaml").write_text(rendered)
    return [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}


def host_network(deployment: dict[str, Any]) -> None:
    """What the host network needs of a pod spec: no port mappings (podman refuses them
    there), so the probes name the service's port by number instead of `http`."""
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        port = int(env_of(container)[f"DEDUP_{container['name'].upper()}_HTTP_PORT"])
        container.pop("ports", None)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                container[probe]["httpGet"]["port"] = port


def down(services: dict[str, tuple[str, int, int]] | None = None) -> list[str]:
    """Stop every pod (SIGTERM, then the grace period: podman 4.3 does not read the pod
    spec's terminationGracePeriodSeconds), check each service exited 0, remove them."""
    failures = []
    ids = {p["Id"]: p["Name"] for p in json.loads(podman("pod", "ps", "--format", "json"))}
    pods = [name for name in ids.values() if name.startswith("dedup-")]
    grace = max((g for _, _, g in (services or {}).values()), default=30)
    if pods:
        t0 = time.monotonic()
        podman("pod", "stop", "--time", str(grace), *pods, check=False)
        took = time.monotonic() - t0
        exits = {}
        for c in json.loads(podman("ps", "--all", "--format", "json")):
            if ids.get(c.get("Pod", "")) in pods and not c.get("IsInfra"):
                exits[c["Names"][0]] = c.get("ExitCode")
        print(f"podman pod stop: {len(pods)} pods in {took:.1f} s (grace {grace} s), exit {exits}")
        failures += [f"{name}: exit {code} on SIGTERM" for name, code in exits.items() if code]
        if took > grace:
            failures.append(f"pod stop took {took:.0f} s, past the grace period")
    podman("kube", "down", str(OUT / "deployments.yaml"), check=False)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-timeout", type=float, default=0, help="0: expect not ready")
    parser.add_argument("--keep", action="store_true", help="leave the pods running")
    parser.add_argument("--set", action="append", default=[], help="passed to helm template")
    parser.add_argument("--down", action="store_true", help="stop and remove the pods")
    options = parser.parse_args()
    if options.down:
        for failure in (problems := down()):
            print(f"FAIL {failure}")
        return 1 if problems else 0

    documents = render([f"--set={item}" for item in options.set])
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    skipped: dict[str, int] = {}
    for d in documents:
        if d.get("kind") != "Deployment":
            skipped[d["kind"]] = skipped.get(d["kind"], 0) + 1
    for d in deployments:
        host_network(d)
    (OUT / "deployments.yaml").write_text(yaml.safe_dump_all(deployments, sort_keys=False))
    print(f"rendered: {len(deployments)} Deployments to play; left to `make chart`: {skipped}")

    services: dict[str, tuple[str, int, int]] = {}  # pod -> (service, port, grace)
    for d in deployments:
        spec = d["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        name = container["name"]
        port = int(env_of(container)[f"DEDUP_{name.upper()}_HTTP_PORT"])
        services[d["metadata"]["name"]] = (name, port, int(spec["terminationGracePeriodSeconds"]))

    podman("kube", "down", str(OUT / "deployments.yaml"), check=False)
    started = time.monotonic()
    podman("kube", "play", "--network", "host", str(OUT / "deployments.yaml"))
    print(f"podman kube play: {len(deployments)} pods in {time.monotonic() - started:.1f} s")

    failures: list[str] = []
    pods = json.loads(podman("pod", "ps", "--format", "json"))
    containers = json.loads(podman("ps", "--all", "--format", "json"))
    for deployment, (service, port, grace) in sorted(services.items(), key=lambda i: i[1][1]):
        pod = next((p for p in pods if p["Name"].startswith(deployment)), None)
        if pod is None:
            failures.append(f"{deployment}: no pod")
            continue
        ours = [c for c in containers if c.get("Pod") == pod["Id"] and not c.get("IsInfra")]
        cname = ours[0]["Names"][0] if ours else "?"
        t0 = time.monotonic()
        healthy = ready = False
        while time.monotonic() - t0 < max(60.0, options.ready_timeout):
            code = get(port, "/healthz")[0]
            healthy |= code == 200
            ready = get(port, "/readyz")[0] == 200
            if healthy and (ready or not options.ready_timeout):
                break
            time.sleep(1)
        detail = get(port, "/readyz")[1][:90]
        inspect = json.loads(podman("inspect", cname))[0]
        user = inspect["Config"].get("User", "")
        read_only = inspect["HostConfig"].get("ReadonlyRootfs")
        uid = podman("exec", cname, "id", "-u", check=False)
        tmp = podman("exec", cname, "sh", "-c", "touch /tmp/w && echo ok", check=False)
        root = podman("exec", cname, "sh", "-c", "touch /w 2>/dev/null && echo no", check=False)
        print(
            f"  {service:9s} pod {pod['Name']}: healthz {'200' if healthy else 'no'}, "
            f"ready {ready} ({detail!r}), user {user or '-'} (id -u {uid}), "
            f"read-only root {read_only}{' but writable' if root else ''}, "
            f"tmp {tmp or 'NOT writable'}"
        )
        if not healthy:
            failures.append(f"{service}: /healthz never 200")
        if root or tmp != "ok":
            failures.append(f"{service}: root filesystem writable, or /tmp not")
        if uid != "10001":
            failures.append(f"{service}: runs as {uid!r}")
        if options.ready_timeout and not ready:
            failures.append(f"{service}: not ready in {options.ready_timeout:.0f} s")
        if not options.ready_timeout and ready:
            failures.append(f"{service}: ready, with the stack down?")
        services[deployment] = (cname, port, grace)

    if options.keep:
        print("pods left running (images/play.py --down)")
    else:
        failures += down(services)
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
