"""How many CPUs this process may really use: the container's quota, not the node's count.

`os.cpu_count()` in a container is the node's core count; a pod limited to 2 CPUs on a
64-core node would start 64 decoding threads that only contend (and each holds an image).
The quota (cgroup v2 `cpu.max`, cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) and
the CPU affinity each bound it; the smaller wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def quota_v2(text: str | None) -> float | None:
    """CPUs from a cgroup v2 `cpu.max` line ("<quota> <period>" or "max <period>")."""
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def quota_v1(quota_text: str | None, period_text: str | None) -> float | None:
    """CPUs from cgroup v1 `cpu.cfs_quota_us` (-1: no limit) and `cpu.cfs_period_us`."""
    try:
        quota, period = int(quota_text or ""), int(period_text or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs; None when there is none.

    In a container the cgroup namespace puts the container's own cgroup at the root of
    the mount, so the files at the root are the pod's limits.
    """
    v2 = quota_v2(_read(root / "cpu.max"))
    if v2 is not None:
        return v2
    for v1 in (root / "cpu", root / "cpu,cpuacct", root):
        found = quota_v1(_read(v1 / "cpu.cfs_quota_us"), _read(v1 / "cpu.cfs_period_us"))
        if found is not None:
            return found
    return None


def affinity_count() -> int:
    """CPUs this process may be scheduled on (all of them where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Threads worth running CPU-bound work on: min(quota rounded up, affinity), >= 1."""
    count = affinity_count()
    quota = cgroup_quota(root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


__all__ = ["available_cpus", "cgroup_quota", "quota_v1", "quota_v2"]
