"""Warm redeploy: from the start of ``git push`` of a one-line change to an app that is
already deployed, until the router answers with the new release.

On the platform of ``bench.deployed`` (the app already pushed once, cold), ``runs`` pushes of
a one-line change. The baseline, measured in the same run, is a push of the same kind of
commit to a branch that does not deploy: the cost of git and the transport alone.
"""

from __future__ import annotations

import time

from bench.common import Table, duration, spread, spread_row, stats
from bench.deployed import Deployed, body


def measure(d: Deployed, runs: int = 5) -> dict[str, float]:
    deploys: list[float] = []
    baselines: list[float] = []
    for _ in range(runs):
        n = d.commit()
        started = time.monotonic()
        d.push(f"side{n}")
        baselines.append(time.monotonic() - started)
        started = time.monotonic()
        d.push()
        d.wait_for_body(body(n))
        deploys.append(time.monotonic() - started)
        d.record_release(body(n))
    median, base = stats(deploys)[0], stats(baselines)[0]
    return {
        "runs": float(runs),
        **spread("redeploy", deploys),
        "plain_push_median_s": base,
        "ratio": median / base,
        "checks_wait_s": d.settings.checks_wait,
    }


def table(r: dict[str, float]) -> Table:
    about = f"""
Warm redeploy of a small Flask app (flask + gunicorn from requirements.txt, one gthread
worker): from the start of `git push` of a one-line change to the router answering with the
new version, over git smart HTTP, {r["runs"]:.0f} runs. The push includes the buildpack build
(dependencies unchanged, so the cached virtualenv is reused), the new release's replica start
and its settle (`PAAS_CHECKS_WAIT`, {r["checks_wait_s"]:g} s: the app has no health checks), the
router reload and the retirement of the old replica. The baseline is a push of the same kind
of commit to a branch that does not deploy, in the same run.
"""
    rows = [
        spread_row("push until the new release answers", r, "redeploy"),
        ("baseline: push to a branch that does not deploy",
         duration(r["plain_push_median_s"]), "", ""),
        ("ratio redeploy / plain push (medians)", f"{r['ratio']:.0f}x", "", ""),
    ]  # fmt: skip
    return Table("Warm redeploy", about, ("", "median", "min", "max"), rows)
