"""Where the host's cgroup hierarchies are, and the parent cgroup dirs runc leaves behind.

runc creates and deletes each container's leaf cgroup itself; this module only finds the
hierarchies (for the OOM counter and for checks) and removes the empty parent dirs on request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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


def memory_dir(cgroups_path: str, found: Mapping[str, Path] | None = None) -> Path:
    """The v1 memory cgroup dir of a runc ``cgroupsPath`` (which need not exist).
    ``found``: ``hierarchies()``."""
    found = hierarchies() if found is None else found
    return found.get("memory", Path("/sys/fs/cgroup/memory")) / cgroups_path.lstrip("/")


def oom_counter(cgroups_path: str, found: Mapping[str, Path] | None = None) -> Path:
    """The file whose ``oom_kill`` line counts the OOM kills in the cgroup of a runc
    ``cgroupsPath`` (it need not exist yet): v1's ``memory.oom_control``, or cgroup v2's
    ``memory.events`` on a host with no v1 memory hierarchy. ``found``: ``hierarchies()``."""
    found = hierarchies() if found is None else found
    if "memory" not in found and "unified" in found:
        return found["unified"] / cgroups_path.lstrip("/") / "memory.events"
    return memory_dir(cgroups_path, found) / "memory.oom_control"


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


@dataclass(frozen=True)
class Usage:
    """What a container's cgroup has used: memory now, CPU time since it started (None when
    the cgroup is gone or the file unreadable)."""

    memory_bytes: int | None
    cpu_seconds: float | None


def usage(cgroups_path: str, roots: Mapping[str, Path] | None = None) -> Usage:
    """Memory and CPU use of the cgroup at ``cgroups_path`` (runc's ``cgroupsPath``): v1's
    ``memory.usage_in_bytes`` and ``cpuacct.usage`` (ns), or v2's ``memory.current`` and
    ``cpu.stat`` ``usage_usec`` where the v1 controller is not mounted. ``roots`` is the
    result of ``hierarchies()``, to read it once for many containers."""
    found = hierarchies() if roots is None else roots
    rel = cgroups_path.lstrip("/")
    unified = found["unified"] / rel if "unified" in found else None
    memory: int | None = None
    if "memory" in found:
        memory = _read_int(found["memory"] / rel / "memory.usage_in_bytes")
    elif unified is not None:
        memory = _read_int(unified / "memory.current")
    cpu_ns: int | None = None
    if "cpuacct" in found:
        cpu_ns = _read_int(found["cpuacct"] / rel / "cpuacct.usage")
    elif unified is not None:
        usec = _read_stat(unified / "cpu.stat", "usage_usec")
        cpu_ns = None if usec is None else usec * 1000
    return Usage(memory, None if cpu_ns is None else cpu_ns / 1e9)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_stat(path: Path, key: str) -> int | None:
    """A ``key value`` line of a flat-keyed cgroup file."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdecimal():
            return int(value)
    return None
