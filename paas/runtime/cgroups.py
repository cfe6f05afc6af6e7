"""Where the host's cgroup hierarchies are, and the parent cgroup dirs runc leaves behind.

runc creates and deletes each container's leaf cgroup itself; this module only finds the
hierarchies (for the OOM counter and for checks) and removes the empty parent dirs on request.
"""

from __future__ import annotations

import os
from pathlib import Path


def hierarchies() -> dict[str, Path]:
    """Controller name -> mount point for every cgroup v1 hierarchy, plus ``"unified"`` for
    the cgroup2 mount (if any)."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup2":
                found.setdefault("unified", Path(fields[4]))
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option not in ("rw", "ro"):  # controllers, and name=systemd
                        found.setdefault(option, Path(fields[4]))
    return found


def memory_dir(cgroups_path: str) -> Path:
    """The v1 memory cgroup dir of a runc ``cgroupsPath`` (which need not exist)."""
    root = hierarchies().get("memory", Path("/sys/fs/cgroup/memory"))
    return root / cgroups_path.lstrip("/")


def parent_dirs(cgroup_parent: str) -> list[Path]:
    """The dirs named ``cgroup_parent`` that exist, one per hierarchy."""
    roots = sorted(set(hierarchies().values()))
    return [d for d in (r / cgroup_parent.strip("/") for r in roots) if d.is_dir()]


def prune(cgroup_parent: str) -> list[Path]:
    """Remove the parent dirs that no longer hold a container; return those still in use."""
    busy = []
    for directory in parent_dirs(cgroup_parent):
        try:
            os.rmdir(directory)
        except OSError:
            busy.append(directory)
    return busy
