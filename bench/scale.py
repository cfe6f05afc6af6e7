"""Scaling: from the start of ``paas ps:scale bench web=10`` (one replica running) until all
10 replicas are routed.

On the platform of ``bench.deployed``, each run scales web from 1 to 10 with the real CLI and
stops two clocks: when the router's config file (``nginx/apps/bench.conf``) first lists 10
upstream servers, and when 10 distinct ``DYNO`` values have answered through the router (the
app answers its ``DYNO`` at ``/dyno``; the config is written before nginx reloads, so that is
the later and the honest one). Between runs it scales back to 1 and waits until only
``web.1`` answers and the other replicas are stopped; that way down is timed too.

The platform starts the new replicas one after another, then each must still be up
``PAAS_CHECKS_WAIT`` seconds after its own start (the app has no health checks); the waits
overlap, so one of them is a floor, reported with the figures. The measured baseline, in
the same run, is ``paas ps:scale bench`` without counts (shows the formation, changes
nothing): the CLI's start and one API round trip.
"""

from __future__ import annotations

import time

from bench.common import Table, duration, spread, spread_row, stats
from bench.deployed import APP_NAME, Deployed

LOW, HIGH = 1, 10


def measure(d: Deployed, runs: int = 5) -> dict[str, float]:
    settle = d.settings.checks_wait
    timeout = settle + 120
    d.scale(LOW)
    d.wait_routed(LOW, timeout)
    d.wait_replicas(LOW, timeout)
    listed: list[float] = []
    answered: list[float] = []
    down: list[float] = []
    stopped: list[float] = []
    baselines: list[float] = []
    for _ in range(runs):
        started = time.monotonic()
        d.cli("ps:scale", APP_NAME)
        baselines.append(time.monotonic() - started)
        started = time.monotonic()
        d.scale(HIGH)
        at_listed, at_answered = d.wait_routed(HIGH, timeout)
        listed.append(at_listed - started)
        answered.append(at_answered - started)
        started = time.monotonic()
        d.scale(LOW)
        down.append(d.wait_routed(LOW, timeout)[1] - started)
        d.wait_replicas(LOW, timeout)
        stopped.append(time.monotonic() - started)
    median, new = stats(answered)[0], HIGH - LOW
    return {
        "runs": float(runs),
        **spread("up", answered),
        "listed_median_s": stats(listed)[0],
        "per_replica_s": median / new,
        "floor_s": settle,
        "beyond_floor_per_replica_s": (median - settle) / new,
        "checks_wait_s": settle,
        "wait_to_retire_s": d.settings.wait_to_retire,
        "down_median_s": stats(down)[0],
        "stopped_median_s": stats(stopped)[0],
        "cli_median_s": stats(baselines)[0],
    }


def table(r: dict[str, float]) -> Table:
    new = HIGH - LOW
    about = f"""
`paas ps:scale bench web={HIGH}` with {LOW} replica running, through the real CLI, until all
{HIGH} replicas are routed: {HIGH} distinct `DYNO` values have answered through the router
(the first row; the second is when the router's config file first listed {HIGH} upstream
servers, just before nginx reloads). {r["runs"]:.0f} runs; between runs the app is scaled back
to {LOW} (timed too: until only `web.1` answers, and until the other replicas are stopped,
after draining `PAAS_WAIT_TO_RETIRE`, {r["wait_to_retire_s"]:g} s here). The platform starts
the {new} new replicas one after another, then each must still be up `PAAS_CHECKS_WAIT`
after its own start ({r["checks_wait_s"]:g} s; the app has no health checks); those waits
overlap, so one of them, {r["floor_s"]:g} s, is a floor, not measured. Per replica is the
median divided by {new}. The baseline is `paas ps:scale bench` without counts (shows the
formation, changes nothing), in the same run.
"""
    rows = [
        spread_row(f"ps:scale web={LOW}→{HIGH} until {HIGH} replicas answer through the router",
                   r, "up"),
        (f"until the router's config lists {HIGH}", duration(r["listed_median_s"]), "", ""),
        ("per new replica", duration(r["per_replica_s"]), "", ""),
        ("floor: PAAS_CHECKS_WAIT (settings)", duration(r["floor_s"]), "", ""),
        ("per new replica beyond the floor", duration(r["beyond_floor_per_replica_s"]), "", ""),
        (f"ps:scale web={HIGH}→{LOW} until only web.1 answers",
         duration(r["down_median_s"]), "", ""),
        (f"ps:scale web={HIGH}→{LOW} until the others are stopped",
         duration(r["stopped_median_s"]), "", ""),
        ("baseline: paas ps:scale bench (no change)", duration(r["cli_median_s"]), "", ""),
    ]  # fmt: skip
    return Table("Scaling", about, ("", "median", "min", "max"), rows)
