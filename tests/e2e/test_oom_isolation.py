"""A replica that goes over its memory limit is OOM-killed alone: while requests keep going
through the router, one of three replicas is made to eat memory; the kernel kills it, the
others answer all along (no request fails but those the victim was answering when it
died), the kill shows as ``out of memory`` in the events (``logs``), and the replica is
restarted."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.load import Load
from paas.model import CONTAINER_PORT
from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "hungry"
HOST = f"{APP}.paas.test"
APP_PY = """\
import logging
import os
from flask import Flask

app = Flask(__name__)
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

@app.get("/")
def index():
    return os.environ["DYNO"]

@app.post("/eat")
def eat():
    meals = []
    while True:
        meals.append(b"x" * (8 << 20))

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ["PORT"]), threaded=True)
"""


def web_replicas(platform: Platform) -> dict[str, dict[str, Any]]:
    ps = json.loads(platform.cli("ps", APP, "--json").stdout)["replicas"]
    return {r["dyno"]: r for r in ps if r["state"] == "running" and not r["retiring"]}


def wait_for(check: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.3)


def test_an_oom_kill_takes_one_replica_only(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "unused")
    (repo / "app.py").write_text(APP_PY)
    (repo / "Procfile").write_text("web: python3 app.py\n")  # one process: it is the replica
    commit(repo, "eats")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    events = services(Settings.from_env(platform.env)).events
    try:
        assert platform.cli("ps:scale", APP, "web=3").returncode == 0
        wait_for(lambda: len(web_replicas(platform)) == 3)
        done = platform.cli("resource:limit", APP, "--memory", "96m")
        assert done.returncode == 0, done.stderr
        before = web_replicas(platform)
        victim = before["web.2"]
        with Load(platform.http_port, HOST, threads=4) as load:
            time.sleep(1.0)
            killed_at = time.time()
            eat = urllib.request.Request(
                f"http://{victim['address']}:{CONTAINER_PORT}/eat", data=b"", method="POST"
            )
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                urllib.request.urlopen(eat, timeout=60)  # it dies before it answers
            died_by = time.time()
            wait_for(lambda: web_replicas(platform).get("web.2", victim)["id"] != victim["id"])
            time.sleep(2.0)  # the restarted one serves too
        after = web_replicas(platform)
        result = load.result
        answered = {body.strip() for body in result.bodies}
        print(f"\n{result.requests} requests, failures: {dict(result.failures)}, answered by "
              f"{sorted(answered)}")  # fmt: skip
        # Only the victim went: the other two are the same containers. The only requests
        # that failed were in the victim's hands when it died (its answer had begun, so the
        # router could not try another replica): at most one per client thread, then.
        assert {d: r["id"] for d, r in after.items() if d != "web.2"} == {
            d: r["id"] for d, r in before.items() if d != "web.2"
        }
        assert result.requests > 100 and result.failed <= 4, dict(result.failures)
        assert all(killed_at <= t <= died_by + 1 for t in result.failed_at), (
            [round(t - killed_at, 2) for t in result.failed_at],
            round(died_by - killed_at, 2),
        )
        assert {"web.1", "web.2", "web.3"} <= answered
        crashes = [
            e.text for e in events.recent(APP, 100) if e.source == "web.2" and e.at >= killed_at
        ]
        assert any("out of memory" in text for text in crashes), crashes
        logs = platform.cli("logs", APP, "-p", "web.2", "-n", "200")
        shown = [line for line in logs.stdout.splitlines() if "paas[web.2]" in line]
        assert any("out of memory" in line for line in shown), (logs.stdout, logs.stderr)
    finally:
        platform.cli("apps:destroy", APP, "--force")
