"""End to end: pushes of apps that each buildpack other than Python builds (the Flask app of
test_push_deploy.py is the Python one): a Node.js app with one npm dependency and no Procfile,
a static site, a Procfile-only app, each answering through the router; and an app that no
buildpack detects, whose push is rejected with what each buildpack looks for. Every app is
destroyed at the end."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paas.model import APP_USER
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SERVER_JS = """\
const http = require("http");
const ms = require("ms");

http
  .createServer((req, res) => {
    console.log("served", req.url);
    res.end(`node says ${ms(90000)} on ${process.env.DYNO}\\n`);
  })
  .listen(Number(process.env.PORT), "0.0.0.0");
"""

Push = Callable[[str, dict[str, str]], str]


@pytest.fixture
def push(platform: Platform, tmp_path: Path) -> Iterator[Push]:
    """``push(app, files)``: create the app, commit ``files`` to a new repository and push it
    over HTTP; returns the push's output. The apps are destroyed afterwards."""
    created: list[str] = []

    def push_app(app: str, files: dict[str, str]) -> str:
        result = platform.cli("apps:create", app)
        assert result.returncode == 0, result.stderr
        created.append(app)
        repo = tmp_path / app
        for name, text in files.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        git(repo, "init", "-q", "-b", "master")
        git(repo, "config", "user.email", "dev@example.test")
        git(repo, "config", "user.name", "Dev")
        commit(repo, "first")
        pushed = git(repo, "push", http_remote(platform, app), "master", check=False)
        return pushed.stderr

    yield push_app
    for app in created:
        platform.cli("apps:destroy", app, "--force")


def test_nodejs_app_without_procfile_runs_npm_start(platform: Platform, push: Push) -> None:
    package = {
        "name": "hello-node",
        "version": "1.0.0",
        "dependencies": {"ms": "^2.1.3"},
        "scripts": {"start": "node server.js"},
    }
    out = push("node-hello", {"package.json": json.dumps(package), "server.js": SERVER_JS})
    assert "remote: -----> Node.js app detected" in out, out
    assert "remote: -----> Installing dependencies with npm install" in out, out
    assert "remote: -----> Default process types: web" in out, out
    assert "Released v1" in out, out
    assert platform.get("node-hello.paas.test") == (200, "node says 2m on web.1\n")
    logs = platform.cli("logs", "node-hello").stdout
    assert "app[web.1]: served /" in logs, logs


def test_static_site_is_served(platform: Platform, push: Push) -> None:
    out = push(
        "site",
        {"index.html": "<h1>static</h1>\n", "css/site.css": "h1 { color: red }\n"},
    )
    assert "remote: -----> Static app detected" in out, out
    assert "Released v1" in out, out
    assert platform.get("site.paas.test") == (200, "<h1>static</h1>\n")
    assert platform.get("site.paas.test", "/css/site.css") == (200, "h1 { color: red }\n")
    assert platform.get("site.paas.test", "/.profile.d/static.sh")[0] == 404


def test_procfile_app_runs_as_is_on_the_stack(platform: Platform, push: Push) -> None:
    # The web process writes to its own dir, as the app's user, then serves it.
    procfile = "web: id -u >uid.txt && python3 -m http.server $PORT\n"
    out = push("plain", {"Procfile": procfile, "hello.txt": "plain hello\n"})
    assert "remote: -----> Procfile app detected" in out, out
    assert "remote: -----> Nothing to install" in out, out
    assert "Released v1" in out, out
    assert platform.get("plain.paas.test", "/hello.txt") == (200, "plain hello\n")
    assert platform.get("plain.paas.test", "/uid.txt") == (200, f"{APP_USER[0]}\n")


def test_app_no_buildpack_detects_is_rejected(platform: Platform, push: Push) -> None:
    out = push("nothing", {"main.go": "package main\n"})
    assert "pre-receive hook declined" in out, out
    assert "No buildpack can build this app" in out, out
    for looked_for in (
        "Python: requirements.txt, pyproject.toml or setup.py",
        "Node.js: package.json",
        "Static: index.html or a public/ directory",
        "Procfile: a Procfile",
    ):
        assert looked_for in out, out
    assert platform.get("nothing.paas.test")[0] != 200
