"""50 idle replicas: what holding them up costs the host, against what the apps use.

Each run starts 50 replicas of ``busybox httpd`` under tini the way the platform does
(``Network.attach`` + ``Runtime.start``: netns, veth, overlay, shim, ``runc run -d``), waits
until every port accepts, lets them idle, then reads:

* the host's ``MemAvailable`` before the first start and after the last one (the delta holds
  everything: processes, page tables, kernel objects of namespaces, veths, mounts, cgroups);
* per replica, the resident memory of the shim (the only platform process a running
  replica keeps), of tini (the container's init) and of httpd (the app itself), as VmRSS and
  as PSS (shared pages, such as the Python interpreter's, split among the processes that map
  them);
* runc's state on ``/run`` (tmpfs, so memory too); runc itself does not stay running.

Runs are repeated; figures are medians over runs. Everything lives on its own bridge,
subnet, cgroup parent and temp dir, and is removed after each run, on failure too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Table,
    build_busybox_layer,
    duration,
    pss_kib,
    rss_kib,
    stats,
    wait_for_port,
)
from bench.container_start import PORT, Env, new_env, teardown
from paas.runtime import bundle, cgroups, shim

REPLICAS = 50
SETTLE = 3.0  # seconds idle before reading


@dataclass(frozen=True)
class _Run:
    available_delta_kib: int  # MemAvailable before - after
    shim_rss: list[int]  # KiB, per replica
    shim_pss: list[int]
    tini_rss: list[int]
    tini_pss: list[int]
    app_rss: list[int]  # httpd
    app_pss: list[int]
    runc_state_kib: int  # all replicas
    start_s: float  # until all 50 accepted


def mem_available_kib() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _settled_available() -> int:
    """The median of a few reads of MemAvailable, a little apart."""
    reads = []
    for _ in range(5):
        reads.append(mem_available_kib())
        time.sleep(0.2)
    return int(stats(reads)[0])


def _pids(env: Env, cid: str) -> Iterator[tuple[str, int]]:
    """("shim" | "tini" | "app", pid) of one replica."""
    directory = env.runtime.containers_dir / cid
    yield "shim", int((directory / shim.SHIM_PID_FILE).read_text())
    init = int((directory / shim.INIT_PID_FILE).read_text())
    cgroup = cgroups.memory_dir(bundle.cgroups_path(env.runtime.cgroup_parent, cid))
    for pid in map(int, (cgroup / "cgroup.procs").read_text().split()):
        yield ("tini" if pid == init else "app"), pid


def _tree_kib(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) // 1024


def _run(env: Env, run: int) -> _Run:
    cids = [f"{env.network.instance}-r{run}-{i}" for i in range(REPLICAS)]
    try:
        before = _settled_available()
        began = time.perf_counter()
        addresses = []
        for cid in cids:
            attachment = env.network.attach(cid)
            env.runtime.start(env.spec(cid, attachment.netns_path))
            addresses.append(str(attachment.address))
        for address in addresses:
            wait_for_port(address, PORT)
        start_s = time.perf_counter() - began
        time.sleep(SETTLE)
        after = _settled_available()
        memory: dict[str, tuple[list[int], list[int]]] = {
            kind: ([], []) for kind in ("shim", "tini", "app")
        }
        for cid in cids:
            per: dict[str, tuple[int, int]] = {kind: (0, 0) for kind in memory}
            for kind, pid in _pids(env, cid):
                rss, pss = per[kind]
                per[kind] = (rss + rss_kib(pid), pss + pss_kib(pid))
            for kind, (rss, pss) in per.items():
                memory[kind][0].append(rss)
                memory[kind][1].append(pss)
        return _Run(
            available_delta_kib=before - after,
            shim_rss=memory["shim"][0], shim_pss=memory["shim"][1],
            tini_rss=memory["tini"][0], tini_pss=memory["tini"][1],
            app_rss=memory["app"][0], app_pss=memory["app"][1],
            runc_state_kib=_tree_kib(env.runtime.runc_root),
            start_s=start_s,
        )  # fmt: skip
    finally:
        for cid in cids:
            try:
                env.runtime.remove(cid)
            finally:
                env.network.detach(cid)


def measure(runs: int = 3) -> dict[str, float]:
    """``runs`` rounds of 50 idle replicas; medians over the rounds (KiB, seconds)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    env = new_env()
    rounds: list[_Run] = []
    try:
        build_busybox_layer(env.layer)
        env.network.ensure_bridge()
        for run in range(runs):
            rounds.append(_run(env, run))
    finally:
        errors = teardown(env)
        if errors:
            raise RuntimeError("Benchmark cleanup failed: " + "; ".join(errors))

    def median(values: list[float]) -> float:
        return stats(values)[0]

    r: dict[str, float] = {"runs": float(runs), "replicas": float(REPLICAS)}
    r["available_delta_kib"] = median([x.available_delta_kib for x in rounds])
    r["start_s"] = median([x.start_s for x in rounds])
    r["runc_state_kib"] = median([x.runc_state_kib for x in rounds])
    for kind in ("shim", "tini", "app"):
        for measure_ in ("rss", "pss"):
            per_round = [getattr(x, f"{kind}_{measure_}") for x in rounds]
            r[f"{kind}_{measure_}_total_kib"] = median([sum(v) for v in per_round])
            r[f"{kind}_{measure_}_each_kib"] = median([median(v) for v in per_round])
    overhead = r["shim_pss_total_kib"] + r["tini_pss_total_kib"] + r["runc_state_kib"]
    r["overhead_pss_total_kib"] = overhead
    r["overhead_to_app_pss"] = overhead / r["app_pss_total_kib"]
    overhead_rss = r["shim_rss_total_kib"] + r["tini_rss_total_kib"] + r["runc_state_kib"]
    r["overhead_rss_total_kib"] = overhead_rss
    r["overhead_to_app_rss"] = overhead_rss / r["app_rss_total_kib"]
    r["available_to_app_pss"] = r["available_delta_kib"] / r["app_pss_total_kib"]
    return r


def table(r: dict[str, float]) -> Table:
    """The figures of ``measure`` as a table."""
    n = int(r["replicas"])
    about = f"""
{n} replicas of `busybox httpd` under tini, started the way the platform starts replicas
(`Network.attach` + `Runtime.start`), then left idle {SETTLE:.0f} s. **MemAvailable** is the
host's drop from before the first start to after the last (everything the replicas hold:
processes, page tables, namespaces, veths, mounts, cgroups; other work on the host moves it
too). Per process kind, the sum over the {n} replicas and the median of one replica, as
VmRSS (counts shared pages in full: the {n} shims share one Python interpreter's pages) and
PSS (shared pages split among the processes mapping them). The **overhead** is what the
platform adds to each app: the shim, tini and runc's state on `/run` (runc does not stay
running); the ratios set it against the apps' own PSS or VmRSS. Medians of {r["runs"]:.0f} rounds;
starting all {n} took {duration(r["start_s"])} (median).
"""

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f} MiB"

    rows: list[tuple[str, ...]] = [
        ("MemAvailable drop", mib(r["available_delta_kib"]),
         mib(r["available_delta_kib"] / n), ""),
    ]  # fmt: skip
    for kind, label in (("shim", "shim (supervisor)"), ("tini", "tini (init)"),
                        ("app", "httpd (the app)")):  # fmt: skip
        rows.append((f"{label}, PSS", mib(r[f"{kind}_pss_total_kib"]),
                     mib(r[f"{kind}_pss_each_kib"]), ""))  # fmt: skip
        rows.append((f"{label}, VmRSS", mib(r[f"{kind}_rss_total_kib"]),
                     mib(r[f"{kind}_rss_each_kib"]), ""))  # fmt: skip
    rows += [
        ("runc state on /run", mib(r["runc_state_kib"]), mib(r["runc_state_kib"] / n), ""),
        ("overhead: shim + tini + runc state (PSS)", mib(r["overhead_pss_total_kib"]),
         mib(r["overhead_pss_total_kib"] / n), f"{r['overhead_to_app_pss']:.1f}x"),
        ("overhead: shim + tini + runc state (VmRSS)", mib(r["overhead_rss_total_kib"]),
         mib(r["overhead_rss_total_kib"] / n), f"{r['overhead_to_app_rss']:.1f}x"),
        ("MemAvailable drop against the apps' PSS", "", "",
         f"{r['available_to_app_pss']:.1f}x"),
    ]  # fmt: skip
    return Table(
        f"{n} idle replicas' total overhead", about,
        ("", f"all {n}", "one replica", "ratio to the apps"), rows,
    )  # fmt: skip
