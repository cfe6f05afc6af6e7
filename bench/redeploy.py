"""Warm redeploy: from the start of ``git push`` of a one-line change to an app that is
already deployed, until the router answers with the new release.

A whole platform runs (embedded Redis, gunicorn, Celery, nginx) in a temp root on free
ports; a small Flask app is pushed once (cold, not counted), then ``runs`` times with a
one-line change. The baseline, measured in the same run, is a push of the same kind of
commit to a branch that does not deploy: the cost of git and the transport alone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import Table, duration, stats
from tests.e2e.platform_fixture import Platform, new_platform

APP = """\
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return "version {n}\\n"
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=900)


def _commit(repo: Path, n: int) -> None:
    (repo / "app.py").write_text(APP.replace("{n}", str(n)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"version {n}")


def _wait_for(p: Platform, body: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if p.get("bench.paas.test", timeout=2) == (200, body):
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"the router never answered {body!r}")


def measure(runs: int = 5) -> dict[str, float]:
    platform = new_platform("198.19.244.0/24")
    work = Path(tempfile.mkdtemp(prefix="paas-bench-redeploy-"))
    try:
        platform.start()
        repo = work / "bench"
        repo.mkdir()
        (repo / "requirements.txt").write_text("flask\ngunicorn\n")
        (repo / "Procfile").write_text("web: gunicorn app:app --bind 0.0.0.0:$PORT\n")
        _git(repo, "init", "-q", "-b", "master")
        _git(repo, "config", "user.email", "bench@example.test")
        _git(repo, "config", "user.name", "bench")
        _commit(repo, 0)
        remote = f"http://paas:{platform.token}@127.0.0.1:{platform.env['PAAS_API_PORT']}"
        remote += "/git/bench.git"
        _git(repo, "push", "-q", remote, "master")  # cold: creates the app, not counted
        _wait_for(platform, "version 0\n")
        deploys: list[float] = []
        baselines: list[float] = []
        for n in range(1, runs + 1):
            _commit(repo, n)
            started = time.monotonic()
            _git(repo, "push", "-q", remote, f"HEAD:refs/heads/side{n}")
            baselines.append(time.monotonic() - started)
            started = time.monotonic()
            _git(repo, "push", "-q", remote, "master")
            _wait_for(platform, f"version {n}\n")
            deploys.append(time.monotonic() - started)
        median, low, high = stats(deploys)
        base, _, _ = stats(baselines)
        return {
            "runs": float(runs),
            "redeploy_median_s": median,
            "redeploy_min_s": low,
            "redeploy_max_s": high,
            "plain_push_median_s": base,
            "ratio": median / base,
        }
    finally:
        platform.stop()
        platform.uninstall()
        shutil.rmtree(platform.root, ignore_errors=True)
        platform.log_path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def table(r: dict[str, float]) -> Table:
    about = f"""
Warm redeploy of a small Flask app (flask + gunicorn from requirements.txt): from the start
of `git push` of a one-line change to the router answering with the new version, over git
smart HTTP, {r["runs"]:.0f} runs. The push includes the buildpack build (dependencies
unchanged, so the cached virtualenv is reused), the new release's replica start and its
1 s settle, the router reload and the retirement of the old replica. The baseline is a
push of the same kind of commit to a branch that does not deploy, in the same run.
"""
    rows = [
        ("push until the new release answers",
         *map(duration, (r["redeploy_median_s"], r["redeploy_min_s"], r["redeploy_max_s"]))),
        ("baseline: push to a branch that does not deploy",
         duration(r["plain_push_median_s"]), "", ""),
        ("ratio redeploy / plain push (medians)", f"{r['ratio']:.0f}x", "", ""),
    ]  # fmt: skip
    return Table("Warm redeploy", about, ("", "median", "min", "max"), rows)
