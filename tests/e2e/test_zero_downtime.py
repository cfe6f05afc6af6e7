"""Zero-downtime changes: requests keep going through the router during a deploy, scale
1->5, scale 5->1, a rollback and a config change, and not one of them fails. Also a
release whose replicas fail their health check, or never listen, leaves the old release
serving and the push rejected with the reason."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.load import Load, LoadResult
from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "zd"
HOST = f"{APP}.paas.test"
APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return f"{VERSION} {os.environ.get('COLOR', '-')} {os.environ['DYNO']}"

@app.get("/health")
def health():
    return ("ok", 200) if HEALTHY else ("sick", 500)
"""


def write_app(repo: Path, version: str, healthy: bool = True) -> None:
    code = APP_PY.replace("{VERSION}", version)
    (repo / "app.py").write_text(f"VERSION = {version!r}\nHEALTHY = {healthy}\n" + code)
    (repo / "app.json").write_text(json.dumps({"healthchecks": {"web": [
        {"name": "ready", "path": "/health", "content": "ok", "attempts": 3, "wait": 0.5,
         "timeout": 2}]}}))


@pytest.fixture(scope="module")
def repo(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = make_app(tmp_path_factory.mktemp("zd") / APP, "unused")
    write_app(path, "v-one")
    commit(path, "v-one")
    git(path, "push", "-q", http_remote(platform, APP), "master")
    yield path


def wait_until(check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def answers(platform: Platform) -> str:
    return platform.get(HOST, timeout=5)[1]


def under_load(
    platform: Platform, change: Callable[[], object], done: Callable[[], bool]
) -> LoadResult:
    with Load(platform.http_port, HOST, threads=6) as load:
        time.sleep(1.0)
        change()
        wait_until(done)
        time.sleep(4.0)  # past the old replicas' drain and stop
    result = load.result
    print(f"{result.requests} requests, {result.retried} retried on a reused connection, "
          f"failures: {dict(result.failures)}")
    assert result.requests > 200
    if result.failed:
        events = services(Settings.from_env(platform.env)).events.recent(APP, 60)
        timeline = [f"{e.at:.2f} {e.line}" for e in events]
        timeline += [f"{t:.2f} request failed" for t in result.failed_at]
        print("\n".join(sorted(timeline)))
    assert result.failed == 0, dict(result.failures)
    return result


def web_count(platform: Platform) -> int:
    ps = json.loads(platform.cli("ps", APP, "--json").stdout)
    return sum(r["state"] == "running" and r["process_type"] == "web" for r in ps["replicas"])


def test_deploy_under_load(platform: Platform, repo: Path) -> None:
    write_app(repo, "v-two")
    commit(repo, "v-two")
    result = under_load(
        platform,
        lambda: git(repo, "push", "-q", http_remote(platform, APP), "master"),
        lambda: answers(platform).startswith("v-two"),
    )
    assert any(b.startswith("v-one") for b in result.bodies)
    assert any(b.startswith("v-two") for b in result.bodies)


def test_scale_up_under_load_spreads_requests(platform: Platform, repo: Path) -> None:
    result = under_load(
        platform,
        lambda: platform.cli("ps:scale", APP, "web=5"),
        lambda: web_count(platform) == 5,
    )
    dynos = {body.split()[-1] for body in result.bodies}
    assert {f"web.{i}" for i in range(1, 6)} <= dynos, dynos


def test_scale_down_under_load(platform: Platform, repo: Path) -> None:
    under_load(
        platform,
        lambda: platform.cli("ps:scale", APP, "web=1"),
        lambda: web_count(platform) == 1 and answers(platform).endswith("web.1"),
    )


def test_config_change_under_load(platform: Platform, repo: Path) -> None:
    under_load(
        platform,
        lambda: platform.cli("config:set", APP, "COLOR=blue"),
        lambda: " blue " in answers(platform),
    )


def test_rollback_under_load(platform: Platform, repo: Path) -> None:
    under_load(
        platform,
        lambda: platform.cli("rollback", APP, "v1"),
        lambda: answers(platform).startswith("v-one"),
    )


@pytest.mark.parametrize(
    ("healthy", "listens", "reason"),
    [(False, True, "failed its health check ready"), (True, False, "did not listen on PORT")],
)
def test_failed_release_keeps_the_old_one(
    platform: Platform, repo: Path, healthy: bool, listens: bool, reason: str
) -> None:
    before = answers(platform)
    write_app(repo, "v-broken", healthy=healthy)
    if not listens:
        (repo / "Procfile").write_text("web: sleep 3600\n")
    commit(repo, "broken")
    push = git(repo, "push", http_remote(platform, APP), "master", check=False)
    assert push.returncode != 0
    assert "pre-receive hook declined" in push.stderr
    assert reason in push.stderr, push.stderr
    assert answers(platform) == before
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    (repo / "Procfile").write_text("web: gunicorn app:app --bind 0.0.0.0:$PORT --workers 1\n")
