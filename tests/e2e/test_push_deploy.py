"""End to end: apps:create, git push over HTTP and SSH, routing, ps, logs, a failed build,
bad input, and recovery after the platform and its containers are killed."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from paas.settings import Settings
from tests.e2e.platform_fixture import Platform, runc_list

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    print("served / for", os.environ.get("DYNO"), flush=True)
    return "{greeting} from " + os.environ["PAAS_APP"] + "\\n"
"""


def git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_app(path: Path, greeting: str, branch: str = "master") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "app.py").write_text(APP_PY.replace("{greeting}", greeting))
    (path / "requirements.txt").write_text("flask\ngunicorn\n")
    (path / "Procfile").write_text("web: gunicorn app:app --bind 0.0.0.0:$PORT --workers 1\n")
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.email", "dev@example.test")
    git(path, "config", "user.name", "Dev")
    commit(path, "first")
    return path


def commit(path: Path, message: str) -> str:
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD").stdout.strip()


def http_remote(p: Platform, app: str) -> str:
    return f"http://paas:{p.token}@127.0.0.1:{p.env['PAAS_API_PORT']}/git/{app}.git"


def api(
    p: Platform, method: str, path: str, body: object = None, token: str | None = None
) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{p.api}/api/v1{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token if token is not None else p.token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_input_is_refused_everywhere(platform: Platform, tmp_path: Path) -> None:
    for name in ("../x", "Hello World", "x" * 200):
        result = platform.cli("apps:create", name)
        assert result.returncode == 2, result
        assert "Invalid app name" in result.stderr
        status, body = api(platform, "POST", "/apps", {"name": name})
        assert status == 400 and "Invalid app name" in str(body["message"])
    status, _ = api(platform, "GET", "/apps/Hello%20World")
    assert status == 400

    result = platform.cli("ps", "nosuchapp")
    assert result.returncode == 3
    assert 'App "nosuchapp" not found' in result.stderr

    status, body = api(platform, "GET", "/apps", token="wrong")
    assert status == 401 and "token" in str(body["message"])

    repo = make_app(tmp_path / "bad", "bad")
    bad_token = f"http://paas:wrong@127.0.0.1:{platform.env['PAAS_API_PORT']}/git/hello.git"
    result = git(repo, "push", bad_token, "master", check=False)
    assert result.returncode != 0
    assert "401" in result.stderr or "Authentication failed" in result.stderr
    bad_name = http_remote(platform, "Hello_World")
    result = git(repo, "push", bad_name, "master", check=False)
    assert result.returncode != 0
    result = git(repo, "ls-remote", bad_token, check=False)
    assert result.returncode != 0


def test_push_over_http_deploys_and_routes(platform: Platform, tmp_path: Path) -> None:
    created = platform.cli("apps:create", "hello")
    assert created.returncode == 0, created.stderr
    repo = make_app(tmp_path / "hello", "hi")

    started = time.monotonic()
    push = git(repo, "push", http_remote(platform, "hello"), "master")
    assert time.monotonic() - started < 600
    out = push.stderr
    assert "remote: -----> Building hello" in out, out
    assert "remote: -----> Python" in out or "remote: -----> Installing" in out, out
    assert "Released v1" in out, out

    status, body = platform.get("hello.paas.test")
    assert (status, body) == (200, "hi from hello\n")
    status, _ = platform.get("unknown.paas.test")
    assert status == 404

    ps = platform.cli("ps", "hello")
    assert ps.returncode == 0, ps.stderr
    assert "web.1" in ps.stdout and "running" in ps.stdout and "v1" in ps.stdout
    ps_json = json.loads(platform.cli("ps", "hello", "--json").stdout)
    (replica,) = ps_json["replicas"]
    assert ipaddress.IPv4Address(replica["address"]) in ipaddress.IPv4Network(
        platform.env["PAAS_SUBNET"]
    )

    logs = platform.cli("logs", "hello")
    assert "app[web.1]:" in logs.stdout and "served / for web.1" in logs.stdout, logs.stdout

    info = json.loads(platform.cli("apps:info", "hello", "--json").stdout)
    assert info["release"] == "v1"
    assert info["git_remotes"]["ssh"].endswith(f":{platform.ssh_port}/hello")


def test_failed_build_is_rejected_and_old_release_serves(
    platform: Platform, tmp_path: Path
) -> None:
    repo = make_app(tmp_path / "hello", "hi")
    remote = http_remote(platform, "hello")
    git(repo, "fetch", "-q", remote, "master")
    git(repo, "reset", "-q", "--hard", "FETCH_HEAD")
    deployed = git(repo, "rev-parse", "HEAD").stdout.strip()
    (repo / "requirements.txt").write_text("flask\ngunicorn\nno-such-package-paas-test==9.9\n")
    commit(repo, "break the build")

    push = git(repo, "push", remote, "master", check=False)
    assert push.returncode != 0
    assert "pre-receive hook declined" in push.stderr, push.stderr
    assert "no-such-package-paas-test" in push.stderr, push.stderr

    heads = git(repo, "ls-remote", remote, "refs/heads/master").stdout.split()
    assert heads[0] == deployed
    assert platform.get("hello.paas.test") == (200, "hi from hello\n")


def test_push_over_ssh_creates_app_and_deploys(platform: Platform, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    added = platform.cli("ssh-keys:add", "dev", input=key.with_suffix(".pub").read_text())
    assert added.returncode == 0, added.stderr
    garbage = platform.cli("ssh-keys:add", "junk", input="not a key\n")
    assert garbage.returncode == 2

    repo = make_app(tmp_path / "viassh", "ssh hello", branch="main")
    ssh = (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    )
    remote = f"ssh://paas@127.0.0.1:{platform.ssh_port}/viassh"
    push = git(repo, "push", remote, "main", env={"GIT_SSH_COMMAND": ssh})
    assert "remote: -----> Building viassh" in push.stderr, push.stderr
    assert platform.get("viassh.paas.test") == (200, "ssh hello from viassh\n")

    bad = git(repo, "push", f"ssh://paas@127.0.0.1:{platform.ssh_port}/Bad_Name", "main",
              env={"GIT_SSH_COMMAND": ssh}, check=False)
    assert bad.returncode != 0 and "Invalid app name" in bad.stderr, bad.stderr

    (repo / "app.py").write_text(APP_PY.replace("{greeting}", "changed"))
    commit(repo, "change greeting")
    git(repo, "push", remote, "main", env={"GIT_SSH_COMMAND": ssh})
    assert platform.get("viassh.paas.test") == (200, "changed from viassh\n")
    ps = json.loads(platform.cli("ps", "viassh", "--json").stdout)
    assert [r["release"] for r in ps["replicas"] if not r["retiring"]] == ["v2"]


def _netns_of(instance: str) -> set[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(f"{instance}-")}


def test_restart_after_containers_are_killed_brings_apps_back(platform: Platform) -> None:
    settings = Settings.from_env(platform.env)
    assert platform.get("hello.paas.test")[0] == 200
    platform.stop()
    containers = runc_list(settings.runc_root)
    assert containers, "apps should outlive the platform's processes"
    for c in containers:
        if c["pid"]:
            os.kill(c["pid"], 9)
    before = _netns_of(settings.instance)
    platform.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if (
                platform.get("hello.paas.test", timeout=2) == (200, "hi from hello\n")
                and platform.get("viassh.paas.test", timeout=2)[0] == 200
            ):
                break
        except OSError:
            pass
        time.sleep(1)
    assert platform.get("hello.paas.test") == (200, "hi from hello\n")
    assert platform.get("viassh.paas.test") == (200, "changed from viassh\n")
    # The killed containers' namespaces, mounts and runc state are gone; one of each remains
    # per running replica. (A replica that was draining when the platform stopped is
    # removed by the next periodic pass, within 30 s.)
    def settled(containers: list[dict[str, object]]) -> bool:
        ours = [c for c in containers if str(c["id"]).split(".")[0] in ("hello", "viassh")]
        return len(ours) == 2 and all(c["status"] == "running" for c in containers)

    deadline = time.monotonic() + 60
    while not settled(running := runc_list(settings.runc_root)) and time.monotonic() < deadline:
        time.sleep(1)
    assert settled(running), running  # every app is back (others of the session too)
    assert not {c["id"] for c in containers} & {c["id"] for c in running}
    assert len(_netns_of(settings.instance)) == len(running)
    assert before  # the old netns existed before the restart cleaned them
    mounts = Path("/proc/self/mountinfo").read_text()
    own = sum(str(settings.containers_dir) in line for line in mounts.splitlines())
    assert own == len(running)
