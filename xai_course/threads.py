"""CPU threads for a container: as many as its CPU quota, not as many as the host's cores.

On Binder and JupyterHub pods a container is often given 1 or 2 CPUs of a many-core host
(its cgroup's CPU quota), while torch starts one thread per core it sees. The surplus
OpenMP threads then wait for each other on the few CPUs the container may use, and every
pass gets several times slower. `match_cpu_quota()` lowers torch's thread count to the
quota when there is one; the explorers call it when they are imported.

    cgroup v2   /sys/fs/cgroup/cpu.max                   "150000 100000": 1.5 CPUs; "max": none
    cgroup v1   /sys/fs/cgroup/cpu/cpu.cfs_quota_us      150000 (-1: none)
                /sys/fs/cgroup/cpu/cpu.cfs_period_us     100000
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["cpu_quota", "match_cpu_quota"]

CGROUP = Path("/sys/fs/cgroup")


def cpu_quota(root: Path = CGROUP) -> float | None:
    """The CPUs this process's cgroup may use (quota / period), or None when no quota is set
    or it cannot be read (not Linux, no cgroup file)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def match_cpu_quota(root: Path = CGROUP) -> int:
    """Lower torch's thread count to the cgroup's CPU quota (at least 1), when a quota is set
    and is smaller than the threads torch would start. Left alone when the user chose: the
    environment sets OMP_NUM_THREADS, or torch.set_num_threads was given a number within
    the quota. Returns the thread count torch uses now."""
    quota = cpu_quota(root)
    if quota is not None and not os.environ.get("OMP_NUM_THREADS"):
        allowed = max(1, int(quota))
        if torch.get_num_threads() > allowed:
            torch.set_num_threads(allowed)
    return torch.get_num_threads()
