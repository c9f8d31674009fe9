"""The stages as processes: `python -m services.<name>` each, with a topology's settings,
logging to a file; stopped with SIGTERM (each finishes its batch, flushes and commits)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from apps.pipeline import StageInfo, Topology


def start_module(
    module: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`python -m module args...` with extra environment, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )


def start_stage(
    stage: StageInfo, log_dir: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return start_module(stage.module, log_dir / f"{stage.name}.log", env)


def start_stages(
    stages: Sequence[StageInfo], topology: Topology, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return [start_stage(s, log_dir, topology.env.get(s.name)) for s in stages]


def stop_stages(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 90) -> list[int]:
    """SIGTERM (each finishes its batch, flushes, commits), then wait; exit codes."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes
