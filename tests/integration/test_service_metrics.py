"""Every metric the chart's dashboard and alerts read is exported by a running service.

Starts each stage service built in this checkout (and the runtime's test stage) on the
real stack, reads its live /metrics, and compares with the names the chart uses.
"""

import asyncio
import contextlib
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from apps.pipeline import PIPELINE
from apps.scan.servers import free_port
from tests.chart.metric_names import chart_metric_names, exposition_metric_names
from tests.integration.conftest import ROOT, start_module

HELM = ROOT / ".tools" / "bin" / "helm"


def service_env(name: str, run_id: str, port: int) -> dict[str, str]:
    prefix = f"DEDUP_{name.upper()}_"
    return {
        f"{prefix}HTTP_PORT": str(port),
        f"{prefix}INPUT_TOPIC": f"test.{run_id}.{name}.in",
        f"{prefix}OUTPUT_TOPIC": f"test.{run_id}.{name}.out",
        f"{prefix}GROUP_ID": f"{name}-{run_id}",
    }


async def scrape_when_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> str:
    """Wait for /readyz, check /healthz, return /metrics."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"service exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/readyz") as ready:
                    if ready.status == 200:
                        async with session.get(f"{base}/healthz") as healthy:
                            assert healthy.status == 200
                        async with session.get(f"{base}/metrics") as metrics:
                            return await metrics.text()
            await asyncio.sleep(0.2)
    raise AssertionError(f"service not ready in time:\n{log.read_text()[-3000:]}")


@pytest.mark.skipif(not HELM.exists(), reason="helm not installed (scripts/install_chart_tools.sh)")
async def test_every_metric_in_the_dashboard_and_alerts_is_exported(
    run_id: str, tmp_path: Path
) -> None:
    modules = {"relay": "tests.support.relay"}
    modules |= {s.name: s.module for s in PIPELINE}
    texts: dict[str, str] = {}
    for name, module in modules.items():
        port = free_port()
        log = tmp_path / f"{name}.log"
        proc = start_module(module, service_env(name, run_id, port), log)
        try:
            texts[name] = await scrape_when_ready(port, proc, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]

    used = chart_metric_names(ROOT, helm=HELM)
    exported = set().union(*(exposition_metric_names(t, declared=True) for t in texts.values()))
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert used, "the chart reads no dedup_ metric at all"
    assert not missing, f"used by the chart, exported by no service ({sorted(texts)}): {missing}"
