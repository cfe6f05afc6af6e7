"""A real git client pushing and fetching over smart HTTP to gunicorn serving make_git_wsgi."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paas.gitserver.repos import RepoStore

VENV_BIN = Path(sys.executable).parent
TOKEN = "s3cret"

WSGI_MODULE = """
import os
from pathlib import Path

from paas.gitserver.http import make_git_wsgi
from paas.gitserver.repos import RepoStore

ROOT = Path(os.environ["GIT_TEST_ROOT"])


def on_push_to_missing(app):
    with open(ROOT / "created.txt", "a") as out:
        out.write(app + "\\n")


app = make_git_wsgi(
    RepoStore(ROOT / "repos", ROOT / "hooks"),
    lambda user, password: password == "s3cret",
    on_push_to_missing,
    {"PAAS_TEST_MARK": "from-hook-env"},
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class GitServer:
    root: Path
    port: int
    repos: RepoStore

    def url(self, repo: str, password: str | None = TOKEN) -> str:
        auth = f"git:{password}@" if password is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}/{repo}"

    def set_hook(self, body: str) -> None:
        hook = self.root / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        hook.chmod(0o755)

    def created(self) -> list[str]:
        path = self.root / "created.txt"
        return path.read_text().split() if path.exists() else []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    root = tmp_path_factory.mktemp("githttp")
    (root / "hooks").mkdir()
    (root / "wsgi_git.py").write_text(WSGI_MODULE)
    srv = GitServer(root, free_port(), RepoStore(root / "repos", root / "hooks"))
    srv.set_hook("exit 0\n")
    log = open(root / "gunicorn.log", "wb")  # noqa: SIM115 (closed once gunicorn has it)
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "-k",
            "gthread",
            "--threads",
            "4",
            "-w",
            "1",
            "--timeout",
            "30",
            "--no-control-socket",
            "-b",
            f"127.0.0.1:{srv.port}",
            "--chdir",
            str(root),
            "wsgi_git:app",
        ],
        env={**os.environ, "GIT_TEST_ROOT": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    try:
        wait_port(srv.port, proc)
        yield srv
    finally:
        stop(proc)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working repository with one commit on master, and a git environment of its own."""
    repo = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "master", str(repo))
    (repo / "app.py").write_text("print('hi')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "LANG": "C",
    }


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(cwd),
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def rev(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def push(work: Path, url: str) -> subprocess.CompletedProcess[str]:
    return git(work, "push", url, "master", check=False)


def http_get(url: str, auth: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_push_creates_app_runs_hook_after_pack_and_moves_ref(server: GitServer, work: Path) -> None:
    server.set_hook(
        """\
        read old new ref
        echo "hook: app=$PAAS_APP mark=$PAAS_TEST_MARK ref=$ref"
        echo "hook: new commit is a $(git cat-file -t "$new")"
        echo "hook: on stderr" >&2
        """
    )
    result = push(work, server.url("first.git"))
    assert result.returncode == 0, result.stderr
    assert "remote: hook: app=first mark=from-hook-env ref=refs/heads/master" in result.stderr
    # The pack is in the object store before the hook runs, so it can read the commit.
    assert "remote: hook: new commit is a commit" in result.stderr
    assert "remote: hook: on stderr" in result.stderr
    assert server.repos.head("first") == rev(work)
    assert server.created() == ["first"]
    assert (server.repos.path("first") / "hooks" / "pre-receive").is_symlink()


def test_declined_push_leaves_ref_and_fails_client(server: GitServer, work: Path) -> None:
    server.set_hook("exit 0\n")
    assert push(work, server.url("declined")).returncode == 0
    before = server.repos.head("declined")
    (work / "app.py").write_text("print('broken')\n")
    git(work, "commit", "-q", "-am", "second")
    server.set_hook(
        """\
        echo "-----> Build failed"
        exit 1
        """
    )
    result = push(work, server.url("declined"))
    assert result.returncode != 0
    assert "remote: -----> Build failed" in result.stderr
    assert "[remote rejected] master -> master (pre-receive hook declined)" in result.stderr
    assert server.repos.head("declined") == before != rev(work)


def test_hook_output_is_streamed_live(server: GitServer, work: Path) -> None:
    server.set_hook(
        """\
        echo "step 1"
        sleep 1
        echo "step 2" >&2
        sleep 1
        echo "step 3"
        """
    )
    start = time.monotonic()
    proc = subprocess.Popen(
        ["git", "push", server.url("live"), "master"],
        cwd=work,
        env=git_env(work.parent),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    arrivals: dict[str, float] = {}
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode(errors="replace")
        for step in ("step 1", "step 2", "step 3"):
            if f"remote: {step}" in line:
                arrivals[step] = time.monotonic() - start
    assert proc.wait(timeout=30) == 0
    end = time.monotonic() - start
    assert set(arrivals) == {"step 1", "step 2", "step 3"}
    assert arrivals["step 1"] < end - 1.5, (arrivals, end)
    assert arrivals["step 2"] < end - 0.5, (arrivals, end)


def test_missing_or_bad_credentials_get_401(server: GitServer, work: Path) -> None:
    url = f"http://127.0.0.1:{server.port}/creds.git/info/refs?service=git-receive-pack"
    status, headers, _ = http_get(url)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert http_get(url, auth="git:wrong")[0] == 401
    assert http_get(url, auth="garbage-no-colon")[0] == 401

    result = push(work, server.url("creds.git", password="wrong"))
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr
    assert not server.repos.exists("creds")
    assert "creds" not in server.created()


def test_invalid_app_name_is_refused_with_a_message(server: GitServer, work: Path) -> None:
    result = push(work, server.url("Bad_Name.git"))
    assert result.returncode != 0
    assert "Invalid app name 'Bad_Name'" in result.stderr
    base = f"http://127.0.0.1:{server.port}"
    status, _, body = http_get(f"{base}/a.b.git/info/refs?service=git-upload-pack", f"git:{TOKEN}")
    assert status == 400
    assert "Invalid app name" in body
    traversal = f"{base}/..%2f..%2fetc.git/info/refs?service=git-upload-pack"
    assert http_get(traversal, f"git:{TOKEN}")[0] in (400, 404)


def test_clone_of_missing_app_is_404_and_creates_nothing(server: GitServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.port}/nothere.git/info/refs?service=git-upload-pack"
    status, _, body = http_get(url, auth=f"git:{TOKEN}")
    assert status == 404
    assert "does not exist" in body
    result = git(tmp_path, "clone", server.url("nothere.git"), "clone", check=False)
    assert result.returncode != 0
    assert not server.repos.exists("nothere")


def test_fetch_and_second_push_see_the_old_ref(server: GitServer, work: Path) -> None:
    server.set_hook("exit 0\n")
    assert push(work, server.url("again")).returncode == 0
    first = rev(work)
    (work / "app.py").write_text("print('v2')\n")
    git(work, "commit", "-q", "-am", "v2")
    server.set_hook(
        """\
        read old new ref
        echo "update $old -> $new"
        """
    )
    result = push(work, server.url("again.git"))
    assert result.returncode == 0, result.stderr
    assert f"remote: update {first} -> {rev(work)}" in result.stderr

    clone = work.parent / "clone"
    git(work.parent, "clone", "-q", server.url("again.git"), str(clone))
    assert rev(clone) == rev(work)
    assert (clone / "app.py").read_text() == "print('v2')\n"


def test_only_smart_http_is_served(server: GitServer) -> None:
    status, _, _ = http_get(f"http://127.0.0.1:{server.port}/x.git/info/refs", f"git:{TOKEN}")
    assert status == 403
    status, _, _ = http_get(f"http://127.0.0.1:{server.port}/x.git/HEAD", f"git:{TOKEN}")
    assert status == 404


def test_concurrent_pushes_to_a_new_app_create_one_repo(server: GitServer, work: Path) -> None:
    server.set_hook("sleep 0.3\n")
    results: list[int] = []

    def one() -> None:
        results.append(push(work, server.url("racy")).returncode)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 in results
    assert server.repos.head("racy") == rev(work)
    leftovers = [p.name for p in (server.root / "repos").iterdir() if p.name.startswith(".")]
    assert leftovers == []
