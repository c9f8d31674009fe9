"""What images/smoke.py and images/play.py share: podman with this machine's flags
(DEDUP_IMAGES_PODMAN, set by images/lib.sh) and a probe's answer."""

from __future__ import annotations

import os
import shlex
import subprocess
import urllib.error
import urllib.request

PODMAN = shlex.split(os.environ.get("DEDUP_IMAGES_PODMAN", "podman"))


def podman(*args: str, check: bool = True, timeout: float = 300) -> str:
    """podman's stdout; raises RuntimeError with what it said when it fails (`check`)."""
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode:
        raise RuntimeError(f"podman {' '.join(args)}: {(done.stdout + done.stderr).strip()}")
    return done.stdout.strip()


def get(port: int, path: str) -> tuple[int, str]:
    """The status and body of http://127.0.0.1:port/path; (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return 0, ""
