"""End to end: ``paas logs`` merges the replicas' output with the platform's events, follows
with ``-t``, filters with ``-p``; ``builds`` and ``builds:output`` show a release's build."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from typing import IO

import pytest

from tests.e2e.platform_fixture import VENV_BIN, Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "logview"
APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
@app.get("/<path:path>")
def index(path=""):
    print("served /" + path, "for", os.environ.get("DYNO"), flush=True)
    return "logs from " + os.environ["PAAS_APP"] + "\\n"
"""


@pytest.fixture(scope="module")
def deployed(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    repo = make_app(tmp_path_factory.mktemp("logview") / APP, "logs")
    (repo / "app.py").write_text(APP_PY)
    commit(repo, "print every path")
    push = git(repo, "push", http_remote(platform, APP), "master")
    assert "Released v1" in push.stderr, push.stderr
    assert platform.get(f"{APP}.paas.test") == (200, "logs from logview\n")
    return platform


def test_logs_merge_output_and_events(deployed: Platform) -> None:
    result = deployed.cli("logs", APP, "-n", "200")
    assert result.returncode == 0, result.stderr
    assert "app[web.1]: served / for web.1" in result.stdout, result.stdout
    assert "paas[deploy]: v1 by" in result.stdout, result.stdout
    assert "paas[web.1]:" in result.stdout, result.stdout


def test_logs_filter_by_process(deployed: Platform) -> None:
    web = deployed.cli("logs", APP, "-p", "web")
    assert web.returncode == 0, web.stderr
    shown = web.stdout.splitlines()
    assert shown and all(line.startswith(("app[web.", "paas[web.")) for line in shown), shown
    worker = deployed.cli("logs", APP, "-p", "worker")
    assert (worker.returncode, worker.stdout) == (0, "")
    bad = deployed.cli("logs", APP, "-p", "web.x")
    assert bad.returncode == 2 and "Invalid process" in bad.stderr


def test_logs_tail_shows_what_comes_later(deployed: Platform) -> None:
    env = {k: v for k, v in deployed.env.items() if k not in ("PAAS_API_URL", "PAAS_TOKEN")}
    follow = subprocess.Popen(
        [str(VENV_BIN / "paas"), "logs", APP, "-t", "-n", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert follow.stdout is not None
        seen = _read_until(follow.stdout, b"\n", time.monotonic() + 30)  # the stream is open
        marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
        assert deployed.get(f"{APP}.paas.test", f"/{marker}")[0] == 200
        seen += _read_until(follow.stdout, marker.encode(), time.monotonic() + 30)
        assert f"app[web.1]: served /{marker} for web.1".encode() in seen, seen
        assert follow.poll() is None  # still following
    finally:
        follow.terminate()
        follow.wait(timeout=10)
        for pipe in (follow.stdout, follow.stderr):
            if pipe is not None:
                pipe.close()


def test_builds_and_build_output(deployed: Platform) -> None:
    builds = deployed.cli("builds", APP)
    assert builds.returncode == 0, builds.stderr
    assert builds.stdout.startswith("v1") and "succeeded" in builds.stdout, builds.stdout
    output = deployed.cli("builds:output", APP, "v1")
    assert output.returncode == 0, output.stderr
    assert f"-----> Building {APP}" in output.stdout, output.stdout
    assert "Released v1" in output.stdout, output.stdout
    missing = deployed.cli("builds:output", APP, "v9")
    assert missing.returncode == 3 and "has no release v9" in missing.stderr


def _read_until(stream: IO[bytes], needle: bytes, deadline: float) -> bytes:
    """Read from a pipe until ``needle`` shows up or the deadline passes."""
    fd = stream.fileno()
    got = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while needle not in got and (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                got += chunk
    return got
