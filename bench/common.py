"""Helpers shared by the benchmarks: a busybox + tini image layer, timing statistics, process
memory, waiting for a TCP port, a description of the machine, and result tables."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyroute2 import IPRoute


def build_busybox_layer(target: Path) -> Path:
    """An image layer of static busybox (every applet linked in /bin) and tini as the init."""
    for d in ("bin", "usr/bin", "etc", "proc", "sys", "dev", "tmp", "www", "data"):
        (target / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/busybox", target / "bin/busybox")
    shutil.copy("/usr/bin/tini-static", target / "usr/bin/tini")
    applets = subprocess.run(
        ["/usr/bin/busybox", "--list"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (target / "bin" / applet).symlink_to("busybox")
    for name in ("hosts", "resolv.conf"):
        (target / "etc" / name).write_text("")
    (target / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (target / "etc/group").write_text("root:x:0:\n")
    (target / "www/index.html").write_text("hello from busybox\n")
    return target


def free_subnet(preferred: str = "198.19.128.0/24") -> IPv4Network:
    """``preferred`` if no interface of this host has an address in it, else another free /24
    in 198.19.128.0/18 (198.18.0.0/15 is reserved for benchmarking, RFC 2544)."""
    with IPRoute() as ipr:
        used = [IPv4Address(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=2)]
    candidates = [IPv4Network(preferred)]
    candidates += [IPv4Network(f"198.19.{secrets.choice(range(129, 192))}.0/24") for _ in range(64)]
    for subnet in candidates:
        if not any(a in subnet for a in used):
            return subnet
    raise RuntimeError("No free /24 in 198.19.128.0/18 for the benchmark network.")


def tag() -> str:
    """A short random name part, so that concurrent or crashed runs never collide."""
    return "b" + secrets.token_hex(3)


# --- measuring ------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def spread(name: str, values: Sequence[float]) -> dict[str, float]:
    """``{name}_median_s``, ``{name}_min_s`` and ``{name}_max_s`` of ``values`` (seconds)."""
    return dict(zip((f"{name}_median_s", f"{name}_min_s", f"{name}_max_s"), stats(values),
                    strict=True))


def wait_for_port(address: str, port: int, timeout: float = 20.0) -> None:
    """Return as soon as ``address:port`` accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{address}:{port} did not accept within {timeout} s") from exc
        time.sleep(0.001)


def rss_kib(pid: int) -> int:
    """The resident set (``VmRSS``) of a process in KiB; 0 if it is gone."""
    return _proc_kib(pid, "status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """The proportional set size of a process in KiB (its shared pages divided among the
    processes that map them); 0 if it is gone."""
    return _proc_kib(pid, "smaps_rollup", "Pss:")


def _proc_kib(pid: int, name: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{name}", encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def machine() -> dict[str, str]:
    """nproc, memory, kernel and runc version of this host."""
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    u = os.uname()
    try:
        runc = subprocess.run(
            ["runc", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        runc = "unknown"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kib / 1024**2:.1f} GiB",
        "kernel": f"{u.sysname} {u.release} {u.version} {u.machine}",
        "runc": runc,
    }


# --- results --------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    about: str  # what the figures mean (markdown)
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def text(self) -> str:
        table = (self.columns, *self.rows)
        widths = [max(len(r[i]) for r in table) for i in range(len(self.columns))]
        lines = [self.title, ""]
        for n, row in enumerate(table):
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", self.about.strip(), ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def spread_row(label: str, r: dict[str, float], name: str) -> tuple[str, ...]:
    """A table row of ``label`` and the median, min and max that ``spread(name, ...)`` gave."""
    return (label, *(duration(r[f"{name}_{k}_s"]) for k in ("median", "min", "max")))


def duration(seconds: float) -> str:
    """``85.3 ms`` below a second, ``1.23 s`` from there on."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
