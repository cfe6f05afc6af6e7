"""A Dockerfile app: built step by step with a cache, routed to its EXPOSEd port, run as
its USER (never as root), and exported as an OCI image that skopeo reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from paas.model import APP_USER
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "dockerized"
DOCKERFILE = """\
FROM bookworm
RUN useradd --create-home --uid 1234 web
WORKDIR /srv
COPY server.py /srv/server.py
RUN echo "built" > /srv/built.txt
ENV GREETING=hello
USER web
EXPOSE 8080
CMD ["python3", "/srv/server.py"]
"""
SERVER = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['GREETING']} from uid {os.getuid()} on {os.environ['PORT']}\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_dockerfile_app_builds_with_cache_serves_and_exports(
    platform: Platform, tmp_path: Path
) -> None:
    repo = tmp_path / APP
    repo.mkdir()
    (repo / "Dockerfile").write_text(DOCKERFILE)
    (repo / "server.py").write_text(SERVER)
    (repo / "README").write_text("one\n")
    git(repo, "init", "-q", "-b", "master")
    git(repo, "config", "user.email", "dev@example.test")
    git(repo, "config", "user.name", "Dev")
    commit(repo, "first")
    first = git(repo, "push", http_remote(platform, APP), "master")
    assert "Dockerfile found" in first.stderr and "Running in" in first.stderr, first.stderr
    assert platform.get(f"{APP}.paas.test") == (200, "hello from uid 1234 on 8080\n")

    (repo / "README").write_text("two\n")  # not copied into the image
    commit(repo, "docs only")
    again = git(repo, "push", http_remote(platform, APP), "master")
    assert "Running in" not in again.stderr, again.stderr  # no RUN step ran
    assert again.stderr.count("Using cache") >= 3, again.stderr
    assert platform.get(f"{APP}.paas.test")[0] == 200

    archive = tmp_path / "image.tar"
    exported = platform.cli("images:export", APP, "-o", str(archive), timeout=300)
    assert exported.returncode == 0, exported.stderr
    inspect = subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{archive}"],
                             capture_output=True, text=True, timeout=120, check=True)
    config = json.loads(inspect.stdout)["config"]
    assert config["Cmd"] == ["python3", "/srv/server.py"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["User"] == "1234:1234"
    assert "GREETING=hello" in config["Env"]


def test_an_image_without_user_runs_as_the_app_user(platform: Platform, tmp_path: Path) -> None:
    repo = tmp_path / "rootless"
    repo.mkdir()
    (repo / "Dockerfile").write_text(
        'FROM bookworm\nCOPY server.py /srv/server.py\nENV GREETING=hi\nEXPOSE 80\n'
        'CMD ["python3", "/srv/server.py"]\n'
    )
    (repo / "server.py").write_text(SERVER)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "config", "user.email", "dev@example.test")
    git(repo, "config", "user.name", "Dev")
    commit(repo, "first")
    push = git(repo, "push", http_remote(platform, "rootless"), "master")
    uid, gid = APP_USER
    assert f"processes will run as uid {uid}, gid {gid}" in push.stderr, push.stderr
    # Not root, and still listening on a port below 1024 in its own netns.
    assert platform.get("rootless.paas.test") == (200, f"hi from uid {uid} on 80\n")


def test_bad_dockerfile_is_rejected_with_its_line(platform: Platform, tmp_path: Path) -> None:
    repo = tmp_path / "baddocker"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM bookworm\nCOPY missing.txt /srv/\n")
    git(repo, "init", "-q", "-b", "master")
    git(repo, "config", "user.email", "dev@example.test")
    git(repo, "config", "user.name", "Dev")
    commit(repo, "broken")
    push = git(repo, "push", http_remote(platform, "baddocker"), "master", check=False)
    assert push.returncode != 0
    assert "Dockerfile line 2" in push.stderr and "missing.txt" in push.stderr, push.stderr
