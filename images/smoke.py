"""make images-smoke: every service image, run with podman, behaves as the chart expects.

For each image, with every dependency (Kafka, blob storage, Milvus, Triton, Event Hubs)
pointed at a closed port on 127.0.0.1:

1. start-up: SIGTERM right after `podman run`, and 1.5 s later (the service is still
   importing, or installing its handlers): the container exits within the grace period
   (0, or 143 when tini's child had no handler yet), never killed;
2. life: the service runs as uid 10001, answers /healthz, reports not ready on /readyz
   (and goes on reporting it) while its dependencies are down;
3. SIGTERM while it waits for them: it exits 0 within the grace period.

That each turns ready once its dependencies are up, and stops cleanly while consuming, is
`make images-play`'s part (images/play-demo.sh: the chart's pods on a private stack).

    python images/smoke.py [--grace S] [SERVICE...]

Podman and its flags come from images/smoke.sh (DEDUP_IMAGES_PODMAN, DEDUP_IMAGES_RUN_FLAGS,
DEDUP_IMAGES_IMAGES); standard library only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from containers import PODMAN, get, podman

RUN_FLAGS = shlex.split(os.environ.get("DEDUP_IMAGES_RUN_FLAGS", ""))
# "hasher=localhost/dedup/hasher:0.1.0 verifier=..."
IMAGES = dict(
    item.split("=", 1) for item in os.environ.get("DEDUP_IMAGES_IMAGES", "").split() if item
)
UID = "10001"
# The exit statuses of a clean stop: 0 (the service's handler ran), 143 (SIGTERM before
# Python installed one, forwarded by tini: nothing had started). 137 is a kill.
CLEAN = {0, 143}


@dataclass
class Endpoints:
    """Where the containers look for their dependencies."""

    kafka: str
    blob: str
    milvus: str
    triton: str
    eventhub: str

    @classmethod
    def closed(cls) -> Endpoints:
        ports = closed_ports(5)
        return cls(
            kafka=f"127.0.0.1:{ports[0]}",
            blob=azurite(ports[1]),
            milvus=f"http://127.0.0.1:{ports[2]}",
            triton=f"127.0.0.1:{ports[3]}",
            eventhub=(
                f"Endpoint=sb://127.0.0.1:{ports[4]}/;SharedAccessKeyName=smoke;"
                "SharedAccessKey=c21va2U=;EntityPath=smoke"
            ),
        )


def azurite(port: int) -> str:
    # Azurite's well-known development account (public, in Microsoft's documentation).
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1"
    )


def closed_ports(count: int, first: int = 29000, last: int = 29039) -> list[int]:
    """Ports nothing listens on (connections are refused)."""
    found = []
    for port in range(first, last + 1):
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(f"smoke: no {count} closed ports in {first}-{last}")


def free_port(first: int = 29040, last: int = 29099) -> int:
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"smoke: no free port in {first}-{last}")


def env_of(service: str, port: int, where: Endpoints) -> dict[str, str]:
    prefix = f"DEDUP_{service.upper()}_"
    env = {
        "HTTP_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": where.kafka,
        "BLOB_CONNECTION_STRING": where.blob,
        "MILVUS_URI": where.milvus,
        "TRITON_URL": where.triton,
        "RETRY_BACKOFF_MAX_SECONDS": "2",
        # A unique consumer group and transactional id per run.
        "GROUP_ID": f"smoke-{service}-{os.getpid()}",
    }
    if service == "ingest":
        env |= {"EVENTHUB_CONNECTION_STRING": where.eventhub, "EVENTHUB_NAME": "smoke"}
        del env["GROUP_ID"]
    return {prefix + key: value for key, value in env.items()}


def start(name: str, image: str, env: dict[str, str]) -> None:
    flags = [f"--env={key}={value}" for key, value in sorted(env.items())]
    podman(
        "run", "--detach", "--name", name, "--network", "host", "--no-healthcheck",
        *RUN_FLAGS, *flags, image,
    )  # fmt: skip


def running(name: str) -> bool:
    return podman("inspect", "--format", "{{.State.Running}}", name, check=False) == "true"


def stop(name: str, grace: float) -> tuple[float, int]:
    """SIGTERM, then wait up to `grace` seconds: (seconds it took, exit status)."""
    started = time.monotonic()
    podman("kill", "--signal", "TERM", name, check=False)
    while running(name) and time.monotonic() - started < grace:
        time.sleep(0.1)
    took = time.monotonic() - started
    if running(name):
        podman("kill", "--signal", "KILL", name, check=False)
        return took, 137
    status = podman("inspect", "--format", "{{.State.ExitCode}}", name)
    return took, int(status or -1)


def logs(name: str, lines: int = 15) -> str:
    done = subprocess.run(
        [*PODMAN, "logs", "--tail", str(lines), name], capture_output=True, text=True, check=False
    )
    return (done.stdout + done.stderr).strip()


@dataclass
class Report:
    service: str
    failures: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
        return ok


def smoke(service: str, image: str, where: Endpoints, grace: float) -> Report:
    report = Report(service)
    tag = f"dedup-smoke-{service}-{os.getpid()}"
    try:
        # 1. SIGTERM during start-up: at once (the shell, Python's start), and 1.5 s in
        # (the imports, settings, the handlers being installed).
        for delay in (0.0, 1.5):
            name = f"{tag}-startup"
            start(name, image, env_of(service, free_port(), where))
            time.sleep(delay)
            took, status = stop(name, grace)
            report.figures[f"stop_at_{delay:g}s"] = f"{took:.1f} s, exit {status}"
            report.check(
                status in CLEAN,
                f"SIGTERM {delay:g} s into start-up: exit {status} after {took:.1f} s\n"
                + logs(name),
            )
            podman("rm", "--force", "--time", "0", name, check=False)

        # 2. Its life while the dependencies are down (or until they are up).
        name = f"{tag}-life"
        port = free_port()
        started = time.monotonic()
        start(name, image, env_of(service, port, where))
        healthy = False
        while time.monotonic() - started < 60 and running(name):
            if get(port, "/healthz")[0] == 200:
                healthy = True
                break
            time.sleep(0.2)
        report.figures["healthz_after_s"] = round(time.monotonic() - started, 2)
        if not report.check(healthy, f"/healthz never answered 200\n{logs(name)}"):
            return report
        users = podman("top", name, "user", "comm", check=False).splitlines()[1:]
        python = [line.split()[0] for line in users if "python" in line]
        report.figures["python_user"] = python[0] if python else users
        report.check(
            bool(python) and all(user in (UID, "dedup") for user in python),
            f"the service does not run as uid {UID}: {users}",
        )
        report.check(
            podman("exec", name, "id", "-u", check=False) == UID, f"podman exec id -u is not {UID}"
        )
        answers = []
        for _ in range(6):  # 3 s: not ready, and staying so
            answers.append(get(port, "/readyz"))
            time.sleep(0.5)
        codes = sorted({code for code, _ in answers})
        report.figures["readyz_while_down"] = codes
        report.figures["readyz_detail"] = answers[-1][1][:100]
        report.check(codes == [503], f"/readyz answered {codes} while dependencies are down")
        # 3. SIGTERM while it waits for its dependencies.
        took, status = stop(name, grace)
        report.figures["stop_when_running_s"] = round(took, 2)
        report.figures["stop_when_running_exit"] = status
        report.check(status == 0, f"SIGTERM: exit {status} after {took:.1f} s\n{logs(name)}")
        return report
    finally:
        for suffix in ("startup", "life"):
            podman("rm", "--force", "--time", "0", f"{tag}-{suffix}", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="default: all of DEDUP_IMAGES_IMAGES")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds (default 10)")
    options = parser.parse_args()
    where = Endpoints.closed()
    names = options.services or list(IMAGES)
    unknown = [name for name in names if name not in IMAGES]
    if unknown or not names:
        parser.error(f"no image for {unknown or 'any service'} (DEDUP_IMAGES_IMAGES)")
    started = time.monotonic()
    failed = 0
    for name in names:
        t0 = time.monotonic()
        report = smoke(name, IMAGES[name], where, options.grace)
        figures = ", ".join(f"{key} {value}" for key, value in report.figures.items())
        state = "ok  " if not report.failures else "FAIL"
        print(f"  {state}  {name:<9} {time.monotonic() - t0:5.1f} s  {figures}", flush=True)
        for failure in report.failures:
            print("        " + failure.replace("\n", "\n        "), flush=True)
        failed += bool(report.failures)
    print(f"images-smoke: {len(names) - failed}/{len(names)} images ok in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
