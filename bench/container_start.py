"""Container start: the platform's path against a bare ``runc run -d`` of the same bundle.

(a) platform: ``Network.attach`` + ``Runtime.start`` (bundle, overlay mount, shim, runc) until
    the container's port 5000 accepts a TCP connection from the host over the bridge.
(b) bare runc: the same layers mounted as an overlay, the same ``config.json`` (rendered by
    ``paas.runtime.bundle.render_config``) and the same kind of netns, all prepared beforehand
    and not counted; only ``runc run -d`` until port 5000 accepts.

The app is ``busybox httpd -f -p 5000`` under tini. Runs of (a) and (b) alternate (the order
flips every run) after one uncounted warm-up of each. Memory: the shim's ``VmRSS`` against the
sum of ``VmRSS`` of the container's own processes (tini and httpd), per replica.

Everything lives on its own bridge, subnet, netns prefix, cgroup parent, runc roots and temp
dir, and is removed in ``finally`` blocks, on failure too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Table,
    build_busybox_layer,
    duration,
    free_subnet,
    rss_kib,
    stats,
    tag,
    wait_for_port,
)
from paas.network import Network
from paas.runtime import bundle, cgroups, shim
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits

PORT = 5000
COMMAND = ("/bin/httpd", "-f", "-p", str(PORT), "-h", "/www")
RUNC_TIMEOUT = 30.0


@dataclass
class Env:
    base: Path
    layer: Path
    runtime: Runtime
    network: Network
    bare_root: Path  # runc --root of the bare runs
    bare_dir: Path  # their bundles

    def spec(self, cid: str, netns: Path) -> ContainerSpec:
        return ContainerSpec(
            id=cid,
            lowers=(self.layer,),
            command=COMMAND,
            env={"HOME": "/"},
            limits=Limits(memory_bytes=64 * 1024**2, cpu=1.0, pids=64),
            netns=netns,
        )


def new_env() -> Env:
    """A temp dir, a runtime and a network of their own (nothing made yet but the dir)."""
    base = Path(tempfile.mkdtemp(prefix="paas-bench-"))
    name = tag()
    try:
        subnet = free_subnet()
    except BaseException:
        shutil.rmtree(base)
        raise
    return Env(
        base=base,
        layer=base / "layers" / "busybox",
        runtime=Runtime(base / "runc", base / "containers", f"paas-bench-{name}"),
        network=Network(f"pb{name}", subnet, name, base / "leases", router_port=80),
        bare_root=base / "runc-bare",
        bare_dir=base / "bare",
    )


@dataclass
class _Sample:
    total: float  # until the port accepts
    launched: float  # until Runtime.start / runc run -d returned
    attach: float = 0.0  # Network.attach (platform only)
    shim_rss: int = 0  # KiB (platform only)
    app_rss: int = 0  # KiB, tini + httpd


def app_rss(env: Env, cid: str) -> int:
    """Sum of VmRSS of the processes in the container's (memory) cgroup."""
    procs = cgroups.memory_dir(bundle.cgroups_path(env.runtime.cgroup_parent, cid)) / "cgroup.procs"
    return sum(rss_kib(int(p)) for p in procs.read_text().split())


def _run_platform(env: Env, cid: str) -> _Sample:
    try:
        t0 = time.perf_counter()
        attachment = env.network.attach(cid)
        t1 = time.perf_counter()
        env.runtime.start(env.spec(cid, attachment.netns_path))
        t2 = time.perf_counter()
        wait_for_port(str(attachment.address), PORT)
        t3 = time.perf_counter()
        shim_pid = int((env.runtime.containers_dir / cid / shim.SHIM_PID_FILE).read_text())
        return _Sample(
            total=t3 - t0, launched=t2 - t0, attach=t1 - t0,
            shim_rss=rss_kib(shim_pid), app_rss=app_rss(env, cid),
        )  # fmt: skip
    finally:
        try:
            env.runtime.remove(cid)
        finally:
            env.network.detach(cid)


def _bare_runc(env: Env, *args: str, check: bool = True) -> None:
    subprocess.run(
        ["runc", "--root", str(env.bare_root), *args],
        stdin=subprocess.DEVNULL, capture_output=True, check=check, timeout=RUNC_TIMEOUT,
    )  # fmt: skip


def _bare_remove(env: Env, cid: str) -> None:
    _bare_runc(env, "delete", "--force", cid, check=False)  # kills it first if still running
    bundle.unmount(env.bare_dir / cid / "rootfs")
    shutil.rmtree(env.bare_dir / cid, ignore_errors=True)


def _run_bare(env: Env, cid: str) -> _Sample:
    directory = env.bare_dir / cid
    try:
        # Prepared beforehand, not counted: netns, bundle, overlay.
        attachment = env.network.attach(cid)
        spec = env.spec(cid, attachment.netns_path)
        rootfs, upper, work = directory / "rootfs", directory / "upper", directory / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True)
        (directory / "hosts").write_text(spec.hosts)
        (directory / "resolv.conf").write_text(spec.resolv)
        config = bundle.render_config(
            spec, rootfs=rootfs, hosts_file=directory / "hosts",
            resolv_file=directory / "resolv.conf", cgroup_parent=env.runtime.cgroup_parent,
            memsw=bundle.host_has_memsw(),
        )  # fmt: skip
        (directory / "config.json").write_text(json.dumps(config, indent=1))
        bundle.mount_overlay(spec.lowers, upper, work, rootfs)
        with open(directory / "container.log", "ab") as log:
            t0 = time.perf_counter()
            subprocess.run(
                ["runc", "--root", str(env.bare_root), "run", "-d", "--bundle", str(directory),
                 cid],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                timeout=RUNC_TIMEOUT,
            )  # fmt: skip
            t1 = time.perf_counter()
        wait_for_port(str(attachment.address), PORT)
        t2 = time.perf_counter()
        return _Sample(total=t2 - t0, launched=t1 - t0, app_rss=app_rss(env, cid))
    finally:
        try:
            _bare_remove(env, cid)
        finally:
            env.network.detach(cid)


def teardown(env: Env) -> list[str]:
    """Remove everything the benchmark made; return what failed."""
    errors: list[str] = []

    def platform_containers() -> None:
        for info in env.runtime.list():
            env.runtime.remove(info.id)

    def bare_containers() -> None:
        if env.bare_dir.is_dir():
            for d in env.bare_dir.iterdir():
                _bare_remove(env, d.name)

    steps: list[Callable[[], None]] = [
        platform_containers, bare_containers, env.network.destroy, env.runtime.prune_cgroups,
    ]  # fmt: skip
    for step in steps:
        try:
            step()
        except Exception as exc:
            errors.append(f"{getattr(step, '__name__', step)}: {exc!r}")
    left = [str(m) for m in bundle.mount_points() if m.is_relative_to(env.base)]
    left += [str(d) for d in cgroups.parent_dirs(env.runtime.cgroup_parent)]
    if left:
        errors.append(f"left behind: {left}")
    else:
        shutil.rmtree(env.base, ignore_errors=True)
    return errors


def measure(runs: int = 10) -> dict[str, float]:
    """Run (a) and (b) ``runs`` times each, interleaved; return medians, extremes and ratios
    (seconds, KiB)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    env = new_env()
    name = env.network.instance
    platform: list[_Sample] = []
    bare: list[_Sample] = []
    try:
        build_busybox_layer(env.layer)
        env.network.ensure_bridge()
        _run_platform(env, f"{name}-pw")  # warm-up: page cache, the shim's imports
        _run_bare(env, f"{name}-bw")
        for i in range(runs):
            order = ("p", "b") if i % 2 == 0 else ("b", "p")
            for kind in order:
                if kind == "p":
                    platform.append(_run_platform(env, f"{name}-p{i}"))
                else:
                    bare.append(_run_bare(env, f"{name}-b{i}"))
    finally:
        errors = teardown(env)
        if errors:
            raise RuntimeError("Benchmark cleanup failed: " + "; ".join(errors))

    result: dict[str, float] = {"runs": float(runs)}
    for prefix, samples in (("platform", platform), ("bare", bare)):
        med, lo, hi = stats([s.total for s in samples])
        result |= {f"{prefix}_median_s": med, f"{prefix}_min_s": lo, f"{prefix}_max_s": hi}
        result[f"{prefix}_launch_median_s"] = stats([s.launched for s in samples])[0]
        result[f"{prefix}_app_rss_kib"] = stats([float(s.app_rss) for s in samples])[0]
    result["platform_attach_median_s"] = stats([s.attach for s in platform])[0]
    result["ratio_median"] = result["platform_median_s"] / result["bare_median_s"]
    result["shim_rss_kib"] = stats([float(s.shim_rss) for s in platform])[0]
    result["shim_to_app_rss"] = result["shim_rss_kib"] / result["platform_app_rss_kib"]
    return result


def table(r: dict[str, float]) -> Table:
    """The figures of ``measure`` as a table."""
    about = f"""
Time from asking for a container to its port 5000 accepting a TCP connection from the host
over the bridge; the app is `busybox httpd` under tini. **platform** is the whole path the
platform takes: `Network.attach` (netns, veth, address) + `Runtime.start` (bundle, overlay
mount, shim, `runc run -d`). **bare runc** is `runc run -d` alone, of the same layers, overlay,
`config.json` and kind of netns, all prepared beforehand and not counted. The rows "until
... returned" stop the clock when `Runtime.start` / `runc run -d` return. The two alternate,
{r["runs"]:.0f} runs each after one uncounted warm-up; the ratio is platform median / bare
median. Memory is VmRSS per replica (median): the shim (a Python process that outlives the
start to record the exit status and OOM kills) against the container's own processes (tini +
httpd). VmRSS counts shared pages, such as those of the Python interpreter, in full.
"""
    rows = [
        ("platform: attach + start, until port accepts",
         *map(duration, (r["platform_median_s"], r["platform_min_s"], r["platform_max_s"]))),
        ("platform: Network.attach alone", duration(r["platform_attach_median_s"]), "", ""),
        ("platform: until Runtime.start returned", duration(r["platform_launch_median_s"]), "", ""),
        ("bare: runc run -d, until port accepts",
         *map(duration, (r["bare_median_s"], r["bare_min_s"], r["bare_max_s"]))),
        ("bare: until runc run -d returned", duration(r["bare_launch_median_s"]), "", ""),
        ("ratio platform / bare (medians)", f"{r['ratio_median']:.2f}x", "", ""),
        ("shim RSS per replica", f"{r['shim_rss_kib'] / 1024:.1f} MiB", "", ""),
        ("app RSS per replica (tini + httpd)",
         f"{r['platform_app_rss_kib'] / 1024:.1f} MiB", "", ""),
        ("ratio shim / app RSS", f"{r['shim_to_app_rss']:.1f}x", "", ""),
    ]  # fmt: skip
    return Table("Container start", about, ("", "median", "min", "max"), rows)
