"""CPU time and peak memory of a command with every process it starts, children and
grandchildren (a `dedup scan` and its private Milvus Lite, Triton and Triton's Python-
backend stubs), split by kind of process.

How it counts:

- CPU, exact: this process becomes a *child subreaper* (Linux's PR_SET_CHILD_SUBREAPER),
  so a descendant whose parent dies before it (a Triton stub whose server was killed)
  is re-parented to us, not to init; every process we reap comes with its rusage, which
  holds its own CPU plus that of every descendant it reaped itself. The sum over what we
  reap is the CPU of the whole tree, however it ends.
- CPU per kind (`triton`, `milvus`, `main`: the command itself and its short-lived
  helpers): every `interval` seconds the tree's processes are read from /proc (each
  one's own utime + stime and resident set); a process's CPU is the last value seen.
  What a process used after its last sample, or a process that lived between two
  samples, shows as `unattributed` (total minus the sum of the kinds): the error bar.
- Peak memory: the largest sum over the tree in one sample of each process's PSS
  (proportional set size, /proc/<pid>/smaps_rollup: a page shared by n processes counts
  1/n in each, so Triton's shared memory with its stubs and the libraries they all map
  are counted once; summing RSS would count them once per process). Where PSS cannot be
  read (another user's process), its RSS.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
TICK = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
KINDS = ("main", "milvus", "triton")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    comm: str
    cpu_seconds: float  # its own user + system time, its threads included
    rss_bytes: int  # its PSS where readable, else its RSS (see the module's docstring)


def parse_stat(text: str) -> ProcStat:
    """/proc/<pid>/stat: `pid (comm) state ppid ...`; comm may hold spaces and ')'."""
    head, _, rest = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, rss 24 (in pages).
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return ProcStat(int(pid_text), int(fields[1]), comm, (utime + stime) * TICK, rss * PAGE)


def read_stat(pid: int) -> ProcStat | None:
    try:
        stat = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):  # gone, or a zombie with nothing left
        return None
    pss = read_pss(pid)
    return stat if pss is None else dataclasses.replace(stat, rss_bytes=pss)


def parse_pss(text: str) -> int | None:
    """The `Pss:` line of /proc/<pid>/smaps_rollup, in bytes."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return None


def read_pss(pid: int) -> int | None:
    try:
        return parse_pss(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except (OSError, ValueError, IndexError):
        return None


def kind_of(comm: str, cmdline: str) -> str:
    """Which of KINDS a process belongs to, by its name and command line."""
    text = f"{comm} {cmdline}"
    if "tritonserver" in text or "triton_python" in text:
        return "triton"
    if "milvus" in comm or "/milvus " in f"{cmdline} " or cmdline.endswith("/milvus"):
        return "milvus"
    return "main"


def cmdline_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int, stats: Iterable[ProcStat]) -> list[ProcStat]:
    """The processes below `root` (not `root` itself), by their parent links."""
    children: dict[int, list[ProcStat]] = {}
    for s in stats:
        children.setdefault(s.ppid, []).append(s)
    found, todo = [], [root]
    while todo:
        for s in children.get(todo.pop(), []):
            found.append(s)
            todo.append(s.pid)
    return found


def all_stats() -> list[ProcStat]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            s = read_stat(int(entry.name))
            if s is not None:
                out.append(s)
    return out


@dataclass
class Tally:
    """What the samples saw; `add` takes one sample of the tree."""

    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last seen CPU seconds
    kind: dict[int, str] = field(default_factory=dict)  # pid -> kind
    names: dict[int, str] = field(default_factory=dict)  # pid -> comm
    peak_rss: int = 0  # bytes: the largest sum over one sample
    peak_rss_by_kind: dict[str, int] = field(default_factory=dict)
    # kind -> the largest sum over one sample of every other kind's processes
    peak_rss_except: dict[str, int] = field(default_factory=dict)
    peak_processes: int = 0
    samples: int = 0

    def add(self, tree: Sequence[ProcStat], kind_for: Callable[[ProcStat], str]) -> None:
        by_kind: dict[str, int] = {}
        for s in tree:
            # A forked child is its parent's copy until it execs its own program (its name
            # changes then): judged again whenever its name changes.
            if self.names.get(s.pid) != s.comm:
                self.kind[s.pid] = kind_for(s)
                self.names[s.pid] = s.comm
            self.cpu[s.pid] = max(self.cpu.get(s.pid, 0.0), s.cpu_seconds)
            k = self.kind[s.pid]
            by_kind[k] = by_kind.get(k, 0) + s.rss_bytes
        total = sum(by_kind.values())
        self.peak_rss = max(self.peak_rss, total)
        for k in KINDS:
            v = by_kind.get(k, 0)
            self.peak_rss_by_kind[k] = max(self.peak_rss_by_kind.get(k, 0), v)
            self.peak_rss_except[k] = max(self.peak_rss_except.get(k, 0), total - v)
        self.peak_processes = max(self.peak_processes, len(tree))
        self.samples += 1

    def cpu_by_kind(self) -> dict[str, float]:
        out = dict.fromkeys(KINDS, 0.0)
        for pid, seconds in self.cpu.items():
            out[self.kind[pid]] = out.get(self.kind[pid], 0.0) + seconds
        return out


@dataclass(frozen=True)
class Usage:
    """One command's cost, its whole process tree included."""

    cpu_seconds: float  # exact: the rusage of everything reaped
    wall_seconds: float  # from start until the command itself exited
    peak_rss_bytes: int  # the largest sum of RSS over the tree in one sample
    cpu_by_kind: Mapping[str, float]  # sampled; see `unattributed`
    peak_rss_by_kind: Mapping[str, int]
    processes: int  # distinct processes seen
    returncode: int
    names: Mapping[str, int] = field(default_factory=dict)  # comm -> processes seen
    rss_except: Mapping[str, int] = field(default_factory=dict)  # see Tally.peak_rss_except

    @property
    def unattributed(self) -> float:
        """CPU the samples did not see (after a process's last sample, or short lives)."""
        return self.cpu_seconds - sum(self.cpu_by_kind.values())

    def without(self, kind: str) -> float:
        """The exact total less a kind's sampled CPU."""
        return self.cpu_seconds - self.cpu_by_kind.get(kind, 0.0)

    def peak_rss_except(self, kind: str) -> int:
        """The peak of the summed RSS of every process but those of `kind`."""
        return self.rss_except.get(kind, self.peak_rss_bytes)


def rusage_seconds(ru: resource.struct_rusage) -> float:
    return float(ru.ru_utime + ru.ru_stime)


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def measure(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = None,
    interval: float = 0.05,
    timeout: float = 3600.0,
    orphan_patience: float = 30.0,
) -> Usage:
    """Run `command` to its end (and whatever it left running, `orphan_patience` seconds
    at most, then killed) and count its whole tree. Nothing else may be a child of this
    process meanwhile: every child reaped here is counted."""
    become_subreaper()
    me = os.getpid()
    tally = Tally()

    def kind_for(s: ProcStat) -> str:
        return kind_of(s.comm, cmdline_of(s.pid))

    stop = threading.Event()
    lock = threading.Lock()

    def sample_once() -> None:
        tree = descendants(me, all_stats())
        with lock:
            tally.add(tree, kind_for)

    def sampler() -> None:
        while not stop.is_set():
            sample_once()
            stop.wait(interval)

    started = time.perf_counter()
    proc = subprocess.Popen(  # reaped below with wait4, never with proc.wait
        list(command), cwd=cwd, env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
    )  # fmt: skip
    thread = threading.Thread(target=sampler, name="proctree-sampler", daemon=True)
    thread.start()
    total = 0.0
    returncode: int | None = None
    wall = 0.0
    kill_at = started + timeout  # the command, and so its tree, past its time
    try:
        while True:
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break  # nothing left below us
            if pid == 0:
                if time.perf_counter() > kill_at:
                    kill_tree(me)
                    kill_at = time.perf_counter() + 5.0
                time.sleep(0.01)
                continue
            total += rusage_seconds(ru)
            if pid == proc.pid:
                returncode = os.waitstatus_to_exitcode(status)
                wall = time.perf_counter() - started
                # What it left running (re-parented to us) gets `orphan_patience`.
                kill_at = min(kill_at, time.perf_counter() + orphan_patience)
    except BaseException:  # interrupted: leave nothing running behind us
        kill_tree(me)
        raise
    finally:
        stop.set()
        thread.join()
        proc.returncode = returncode if returncode is not None else -1
    names: dict[str, int] = {}
    for comm in tally.names.values():
        names[comm] = names.get(comm, 0) + 1
    return Usage(
        cpu_seconds=total,
        wall_seconds=wall,
        peak_rss_bytes=tally.peak_rss,
        cpu_by_kind=tally.cpu_by_kind(),
        peak_rss_by_kind=dict(tally.peak_rss_by_kind),
        processes=len(tally.cpu),
        returncode=proc.returncode,
        names=names,
        rss_except=dict(tally.peak_rss_except),
    )


def kill_tree(root: int) -> None:
    """KILL every process below `root` (what a measured command left running)."""
    for s in descendants(root, all_stats()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(s.pid, signal.SIGKILL)
