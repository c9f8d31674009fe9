"""A private Triton server for one `dedup scan` (or one `make eval` run).

The command comes from stack/lib.sh, the same function `make up` uses (so a scan runs
exactly the local stack's Triton, with the environment Triton's Python backend needs),
but with a private run directory, free ports and only the scan's model: nothing is
shared with a running stack, and `make up` is not needed. It is killed (its whole process
group: the Python-backend stubs too) when the scan ends, and its shared memory removed.

It starts in the background: the scan hashes its files while Triton loads its model
(`Endpoints.ready` resolves once it serves it), instead of waiting ~2 s before the first
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# The checkout this runs from: its local stack (stack/lib.sh) and venvs (`make setup`).
REPO = Path(__file__).resolve().parents[2]
LIB_SH = REPO / "stack" / "lib.sh"
START_TIMEOUT_SECONDS = 120.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SHM = Path("/dev/shm")  # noqa: S108 (where Triton's Python backend keeps its regions)


class ServerError(RuntimeError):
    """A private server could not be started (its log tail is in the message)."""


async def _at_once() -> None:
    return None


@dataclass(frozen=True)
class Endpoints:
    """Where the scan's handlers find Milvus and Triton."""

    milvus_uri: str | None  # None: the scan's indexes live in its own process
    triton_url: str  # gRPC host:port, as the embedder's settings want it
    # Returns once Triton serves the model (raises ServerError if it never will): what
    # needs no model runs before it.
    ready: Callable[[], Awaitable[None]] = _at_once


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_command(
    component: str, run_dir: Path, ports: Mapping[str, int], extra: Mapping[str, str] = {}
) -> list[str]:
    """The command line stack/lib.sh builds for `component`, with its own run dir and ports
    (DEDUP_RUN_DIR, DEDUP_STACK_<PART>_PORT) and `extra` DEDUP_STACK_* settings; its
    `_prepare` step runs first."""
    if not LIB_SH.is_file():
        raise ServerError(f"{LIB_SH} is missing: `dedup scan` runs from a checkout of dedup")
    steps = (f"{component}_prepare >&2", f"{component}_command", 'printf "%s\\0" "${CMD[@]}"')
    script = " && ".join(('source "$0"', *steps))
    env = dict(os.environ, DEDUP_RUN_DIR=str(run_dir))
    env |= {f"DEDUP_STACK_{part}_PORT": str(port) for part, port in ports.items()}
    env |= {f"DEDUP_STACK_{name}": value for name, value in extra.items()}
    done = subprocess.run(
        ["bash", "-c", script, str(LIB_SH)], env=env, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise ServerError(f"{component}: stack/lib.sh failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode().split("\0")[:-1]


def require(command: list[str], binary: str, what: str) -> None:
    """Fail clearly when the server's binary is not installed."""
    if not any(part.endswith(binary) and Path(part).is_file() for part in command):
        raise ServerError(f"{what} is not installed: run `make setup`")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the scan's process dies, however it dies
    (Linux's PR_SET_PDEATHSIG), so that a killed scan leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    """One process in its own session, logging to a file, stopped with its whole group."""

    def __init__(self, name: str, command: list[str], cwd: Path) -> None:
        self.name = name
        self.log = cwd / f"{name}.log"
        cwd.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only a prctl call: safe between fork and exec
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, ready: Callable[[], Awaitable[bool]], patience: float) -> None:
        deadline = time.monotonic() + patience
        while True:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited during start-up ({self.proc.returncode}):\n"
                    f"{self.log_tail()}"
                )
            if await ready():
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name} not ready after {patience:.0f} s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        """KILL the whole group at once: for a server with nothing to save."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def shm_regions(http_port: int) -> list[Path]:
    """The Python backend's shared-memory files of the Triton on `http_port` (stack/lib.sh
    names their prefix after that port)."""
    return sorted(SHM.glob(f"dedup{http_port}_*"))


def kill_triton(server: Server, http_port: int) -> None:
    """A private Triton holds nothing worth a graceful stop (which takes seconds: the
    Python backend winds its stubs down): killed at once, its shared memory removed."""
    server.kill()
    for region in shm_regions(http_port):
        with contextlib.suppress(OSError):
            region.unlink()


def launch_triton(run_dir: Path, model: str) -> tuple[Server, dict[str, int]]:
    """Triton started on free ports (not yet ready): the server and its ports."""
    ports = {"TRITON_HTTP": free_port(), "TRITON_GRPC": free_port(), "TRITON_METRICS": free_port()}
    # Only the scan's model: the repository's others would cost memory and start-up time.
    command = stack_command("triton", run_dir, ports, {"TRITON_MODEL": model})
    require(command, "/tritonserver", "Triton (.venv-triton)")
    return Server("triton", command, run_dir / "triton"), ports


@contextlib.asynccontextmanager
async def private_triton(
    run_dir: Path, model: str
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """Triton on free ports under `run_dir`, serving `model`: its gRPC host:port and a
    wait until it serves the model (it starts meanwhile)."""
    server, ports = await asyncio.to_thread(launch_triton, run_dir, model)
    ready = f"http://127.0.0.1:{ports['TRITON_HTTP']}/v2/models/{model}/ready"
    starting = asyncio.ensure_future(
        server.wait_ready(lambda: asyncio.to_thread(_http_ok, ready), START_TIMEOUT_SECONDS)
    )
    try:
        # Shielded: one waiter given up does not stop the start the others wait for.
        yield f"127.0.0.1:{ports['TRITON_GRPC']}", lambda: asyncio.shield(starting)
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, ServerError):
            await starting
        await asyncio.to_thread(kill_triton, server, ports["TRITON_HTTP"])
