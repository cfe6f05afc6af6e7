"""Router throughput and latency: wrk through the router against wrk straight at one replica.

On the platform of ``bench.deployed``, with the app scaled to 1 and then to 3 web replicas,
``wrk -t2 -c32 -d10s --latency`` runs once against the router (``Host: bench.paas.test`` on
the router's port on loopback) and once, right after and with the same threads, connections
and duration, against one replica's own address on the bridge (``http://ADDRESS:5000/``, the
address from ``paas ps bench --json``): the baseline. With 3 replicas the baseline is still
that one replica. From wrk's output: requests per second, the p50 and p99 latency of its
``--latency`` distribution, and errors (socket errors plus non-2xx/3xx answers).

32 connections saturate a replica (one gunicorn worker), so those latencies are mostly
queueing. The latency one request gains through the router is measured apart, for 1 replica,
with one connection (``wrk -t1 -c1``), where nothing queues.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from bench.common import Table
from bench.deployed import HOST, Deployed

PORT = 5000
LOADED = ("-t2", "-c32")
ONE_BY_ONE = ("-t1", "-c1")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LATENCY = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_s: float
    p99_s: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) + non-2xx/3xx answers


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency`` output."""

    def number(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk's output:\n{output}")
        return match

    def percentile(p: int) -> float:
        match = number(rf"^\s*{p}%\s+{_LATENCY}\s*$")
        return float(match[1]) * _UNITS[match[2]]

    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(int(n) for n in socket.groups()) if socket else 0
    return WrkResult(
        requests_per_s=float(number(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_s=percentile(50),
        p99_s=percentile(99),
        requests=int(number(r"(\d+) requests in")[1]),
        errors=errors + (int(bad[1]) if bad else 0),
    )


def wrk(url: str, load: tuple[str, ...], seconds: int, host: str | None = None) -> WrkResult:
    args = ["wrk", *load, f"-d{seconds}s", "--latency"]
    if host is not None:
        args += ["-H", f"Host: {host}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True,
                          timeout=seconds + 60)
    return parse_wrk(done.stdout)


def _pair(d: Deployed, direct: str, load: tuple[str, ...], seconds: int
          ) -> tuple[WrkResult, WrkResult]:
    """(through the router, straight at the replica at ``direct``)."""
    router = wrk(f"http://127.0.0.1:{d.platform.http_port}/", load, seconds, HOST)
    return router, wrk(f"http://{direct}:{PORT}/", load, seconds)


def _scale(d: Deployed, count: int) -> None:
    d.scale(count)
    d.wait_routed(count)
    d.wait_replicas(count)


@dataclass(frozen=True)
class Result:
    seconds: int  # wrk's duration under load
    cpu: float  # each replica's CPU limit
    pairs: dict[str, tuple[WrkResult, WrkResult]]  # (router, direct) by the keys of LABELS


LABELS = {"1": "1 replica", "3": "3 replicas", "1c": "1 replica, 1 connection"}


def measure(d: Deployed, seconds: int = 10) -> Result:
    _scale(d, 1)
    direct = str(d.replicas()[0]["address"])
    pairs = {"1": _pair(d, direct, LOADED, seconds)}
    pairs["1c"] = _pair(d, direct, ONE_BY_ONE, max(2, seconds // 2))
    _scale(d, 3)
    pairs["3"] = _pair(d, direct, LOADED, seconds)
    _scale(d, 1)
    return Result(seconds, d.settings.default_limits.cpu, pairs)


def _latency(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _signed(seconds: float) -> str:
    return ("-" if seconds < 0 else "+") + _latency(abs(seconds))


def table(r: Result) -> Table:
    seconds = r.seconds
    about = f"""
`wrk -t2 -c32 -d{seconds}s --latency`, one run each, through the router (`Host: {HOST}` on
its port on loopback) and, right after with the same threads, connections and duration,
straight at one replica's address on the bridge (`http://ADDRESS:{PORT}/`, from
`paas ps bench --json`), with the app at 1 and then 3 web replicas. Each replica is gunicorn
with one gthread worker of 4 threads, which keeps connections alive (the app's Procfile),
under a {r.cpu:g}-CPU cgroup limit; nginx keeps up to 32 idle connections to the replicas.
wrk, nginx and the replicas share the host's CPUs. **With 3 replicas the direct baseline is
still one replica.** The ratio rows give router / direct for requests per second and
router - direct for latency: the latency a request gains through the router. Under 32
connections a replica is saturated and latencies are mostly queueing; the one-connection rows
(`wrk -t1 -c1`, half the duration, 1 replica) show what the router adds to a request when
nothing queues. Errors are wrk's socket errors plus non-2xx/3xx answers.
"""
    rows: list[tuple[str, ...]] = []
    for key, label in LABELS.items():
        router, direct = r.pairs[key]
        rows += [
            (f"{label}: through the router", f"{router.requests_per_s:.0f}",
             _latency(router.p50_s), _latency(router.p99_s), str(router.errors)),
            (f"{label}: direct to one replica", f"{direct.requests_per_s:.0f}",
             _latency(direct.p50_s), _latency(direct.p99_s), str(direct.errors)),
            (f"{label}: router / direct, router - direct",
             f"{router.requests_per_s / direct.requests_per_s:.2f}x",
             _signed(router.p50_s - direct.p50_s), _signed(router.p99_s - direct.p99_s), ""),
        ]  # fmt: skip
    return Table("Router throughput and latency", about,
                 ("", "req/s", "p50", "p99", "errors"), rows)
