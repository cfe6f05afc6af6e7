"""Rollback: from the start of ``paas rollback bench vN`` (the real CLI) until the router
answers with that release's body.

On the platform of ``bench.deployed``, ``runs`` rollbacks alternate between two releases that
answer differently (the current one and the newest older one with another body; one more
push first if there is none), so that every rollback changes what is served. The CLI returns
once the worker has carried the rollback out; the clock stops when the router answers. The
baseline, measured in the same run, is a CLI command that changes nothing
(``paas releases bench``): the CLI's start and one API round trip.
"""

from __future__ import annotations

import time

from bench.common import Table, duration, spread, spread_row, stats
from bench.deployed import APP_NAME, Deployed


def _pair(d: Deployed) -> tuple[int, int]:
    """(an older release, the current one) that answer differently."""
    current = max(d.bodies)
    older = [v for v, answer in d.bodies.items() if answer != d.bodies[current]]
    if not older:
        older, current = [current], d.deploy()
    return max(older), current


def measure(d: Deployed, runs: int = 5) -> dict[str, float]:
    pair = _pair(d)
    totals: list[float] = []
    returned: list[float] = []
    baselines: list[float] = []
    for i in range(runs):
        target = pair[i % 2]
        started = time.monotonic()
        d.cli("releases", APP_NAME)
        baselines.append(time.monotonic() - started)
        started = time.monotonic()
        d.cli("rollback", APP_NAME, f"v{target}")
        returned.append(time.monotonic() - started)
        d.wait_for_body(d.bodies[target])
        totals.append(time.monotonic() - started)
        d.record_release(d.bodies[target])
    median, base = stats(totals)[0], stats(baselines)[0]
    return {
        "runs": float(runs),
        **spread("rollback", totals),
        "returned_median_s": stats(returned)[0],
        "cli_median_s": base,
        "ratio": median / base,
        "checks_wait_s": d.settings.checks_wait,
    }


def table(r: dict[str, float]) -> Table:
    about = f"""
`paas rollback bench vN` through the real CLI, from the start of the command until the
router answers with release vN's body, {r["runs"]:.0f} runs alternating between two releases
that answer differently. A rollback builds nothing: it makes a new release of vN's image and
config, starts its replica, waits for it to settle (`PAAS_CHECKS_WAIT`,
{r["checks_wait_s"]:g} s: the app has no health checks), routes it (nginx reload, confirmed)
and retires the old replica; the CLI returns when that is done. The baseline is
`paas releases bench`, a command that changes nothing (the CLI's start and one API round
trip), in the same run.
"""
    rows = [
        spread_row("rollback until the old release answers", r, "rollback"),
        ("until the command returned", duration(r["returned_median_s"]), "", ""),
        ("baseline: paas releases bench", duration(r["cli_median_s"]), "", ""),
        ("ratio rollback / baseline (medians)", f"{r['ratio']:.0f}x", "", ""),
    ]  # fmt: skip
    return Table("Rollback", about, ("", "median", "min", "max"), rows)
