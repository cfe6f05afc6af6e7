"""cgroup limits of real runc containers doing their worst: a fork bomb stops at the pids
limit without the host noticing, and a CPU-bound replica with half a CPU gets half a CPU,
as ``cpu.stat`` and ``cpuacct.usage`` (cgroup v1) account it, however much more it wants."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from paas.runtime import bundle, cgroups
from paas.settings import Limits
from tests.integration.fixtures_runtime import Sandbox

pytestmark = pytest.mark.root


def _cgroup(sandbox: Sandbox, controller: str, cid: str) -> Path:
    root = cgroups.hierarchies()[controller]
    return root / bundle.cgroups_path(sandbox.runtime.cgroup_parent, cid).lstrip("/")


def _sample(cpu: Path, cpuacct: Path) -> tuple[dict[str, int], int, float]:
    """``cpu.stat``, ``cpuacct.usage`` (ns) and the time they were read at."""
    lines = (cpu / "cpu.stat").read_text().splitlines()
    used = int((cpuacct / "cpuacct.usage").read_text())
    return {k: int(v) for k, v in (line.split() for line in lines)}, used, time.monotonic()


def test_a_fork_bomb_stops_at_the_pids_limit(sandbox: Sandbox) -> None:
    limit = 64
    bomb = "b() { b | b & }; b; sleep 600"
    spec = sandbox.spec("bomb", ("sh", "-c", bomb))
    sandbox.runtime.start(replace(spec, limits=Limits(64 * 1024**2, 1.0, limit)))
    pids = _cgroup(sandbox, "pids", "bomb")
    assert (pids / "pids.max").read_text().strip() == str(limit)
    peak = host_forks = 0
    slowest = 0.0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        peak = max(peak, int((pids / "pids.current").read_text()))
        # The host goes on starting processes as usual while the bomb goes off.
        began = time.monotonic()
        subprocess.run(["true"], check=True, timeout=10)
        slowest = max(slowest, time.monotonic() - began)
        host_forks += 1
        time.sleep(0.01)
    refused = int((pids / "pids.events").read_text().split()[1])  # "max N": forks refused
    print(f"\npids.current peak {peak} of {limit}, {refused} forks refused in the container; "
          f"{host_forks} host forks meanwhile, the slowest {slowest * 1000:.0f} ms")  # fmt: skip
    assert peak <= limit
    assert refused > 0  # the bomb did hit the limit, again and again
    assert slowest < 2.0
    sandbox.runtime.stop("bomb", grace=1)
    assert sandbox.runtime.get("bomb") is None


def test_half_a_cpu_is_half_a_cpu(sandbox: Sandbox) -> None:
    # Two busy loops: it wants two CPUs. With a weight far above anything else on the host
    # it would get them on a loaded host too; the quota is what holds it back.
    spin = "for i in 1 2; do (while :; do :; done) & done; wait"
    spec = sandbox.spec("spin", ("sh", "-c", spin))
    sandbox.runtime.start(replace(spec, limits=Limits(64 * 1024**2, 0.5, 64)))
    cpu, acct = _cgroup(sandbox, "cpu", "spin"), _cgroup(sandbox, "cpuacct", "spin")
    for weighted in (cpu.parent, cpu):  # its parent competes with the host's cgroups
        (weighted / "cpu.shares").write_text("65536")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == str(bundle.CPU_PERIOD_US // 2)
    time.sleep(0.5)  # past its start
    stat0, used0, t0 = _sample(cpu, acct)
    time.sleep(4)
    stat1, used1, t1 = _sample(cpu, acct)
    sandbox.runtime.stop("spin", grace=1)
    share = (used1 - used0) / 1e9 / (t1 - t0)
    periods = stat1["nr_periods"] - stat0["nr_periods"]
    throttled = stat1["nr_throttled"] - stat0["nr_throttled"]
    throttled_s = (stat1["throttled_time"] - stat0["throttled_time"]) / 1e9
    print(f"\nCPU share {share:.3f} over {t1 - t0:.1f} s; throttled in {throttled} of {periods} "
          f"periods, {throttled_s:.2f} s in all")  # fmt: skip
    # The quota caps it: never over half a CPU (plus one period's rounding); with its
    # weight it gets nearly all of that.
    assert 0.4 <= share <= 0.5 * (1 + bundle.CPU_PERIOD_US / 1e6 / (t1 - t0)) + 0.02, share
    # It used up its quota and was made to wait for the next period, in nearly every one.
    assert periods >= 30 and throttled >= 0.8 * periods, (throttled, periods)
    assert throttled_s >= 0.25 * (t1 - t0), throttled_s
