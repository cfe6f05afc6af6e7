"""A running web replica that stops answering its health check is taken out of the router
and restarted by the monitor (three failed probes, 10 s apart)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "wedged"
APP_PY = """\
from flask import Flask

app = Flask(__name__)
state = {"sick": False}

@app.get("/")
def index():
    return "fine\\n"

@app.get("/sicken")
def sicken():
    state["sick"] = True
    return "sick now\\n"

@app.get("/health")
def health():
    return ("no", 500) if state["sick"] else ("ok", 200)
"""


def replica_ids(platform: Platform) -> list[str]:
    ps = json.loads(platform.cli("ps", APP, "--json").stdout)["replicas"]
    return [r["id"] for r in ps if r["state"] == "running" and not r["retiring"]]


def test_unresponsive_replica_is_restarted(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "unused")
    (repo / "app.py").write_text(APP_PY)
    (repo / "app.json").write_text(json.dumps(
        {"healthchecks": {"web": [{"path": "/health", "content": "ok", "attempts": 2}]}}))
    commit(repo, "wedges on demand")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    (before,) = replica_ids(platform)
    assert platform.get(f"{APP}.paas.test", "/sicken") == (200, "sick now\n")

    deadline = time.monotonic() + 75
    while time.monotonic() < deadline and replica_ids(platform) in ([before], []):
        time.sleep(2)
    after = replica_ids(platform)
    assert after and after != [before], after
    assert platform.get(f"{APP}.paas.test", "/health") == (200, "ok")
    lines = platform.cli("logs", APP, "-n", "200").stdout
    assert "not answering its health check" in lines, lines
