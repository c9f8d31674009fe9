"""A service stopped while it is still importing its modules (about a second) ends
cleanly, with 0: the stop is kept from the first line of its `__main__` and acted on once
its loop runs. Without that, Python's default action for SIGTERM kills it mid-import."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("service", ["verifier", "ranker"])
def test_a_stop_during_the_imports_ends_the_service_cleanly(service: str) -> None:
    env = dict(
        os.environ,
        **{
            f"DEDUP_{service.upper()}_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nobody there
            f"DEDUP_{service.upper()}_HTTP_PORT": "0",
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.3)  # Python is up, the service's imports are not done
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err.decode()[-2000:]
