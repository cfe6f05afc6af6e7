"""End to end through the real `paas` CLI and SSH: what a user does with an app after the first
push. Config vars with awkward values reach the app unchanged, releases and rollback, process
control, domains, SSH commands, the app taken from a checkout's `paas` remote, and destroy.

The tests run in order on one app and each builds on the state the previous ones left."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas.images.store import ImageStore
from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "cli-life"
HOST = f"{APP}.paas.test"
DOMAIN = "example.test"
OTHER = "cli-other"
VALUE = "a b 'single' \"double\" $HOME = x=y; `id`\nsecond line é"

APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return "{version}\\n"

@app.get("/env/<key>")
def env(key):
    return os.environ.get(key, "<unset>")
"""


@pytest.fixture(scope="module")
def checkout(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The app, created with the CLI and pushed once (v1 answers "one"), in a checkout with a
    `paas` remote; destroyed at the end whatever happened."""
    created = platform.cli("apps:create", APP)
    assert created.returncode == 0, created.stderr
    repo = make_app(tmp_path_factory.mktemp("checkout") / APP, "unused")
    deploy(repo, "one", remote=http_remote(platform, APP))
    try:
        yield repo
    finally:
        platform.cli("apps:destroy", APP, "--force")


def deploy(repo: Path, version: str, remote: str | None = None) -> None:
    (repo / "app.py").write_text(APP_PY.replace("{version}", version))
    commit(repo, f"version {version}")
    if remote is not None:
        git(repo, "remote", "add", "paas", remote)
    push = git(repo, "push", "paas", "master")
    assert "Released" in push.stderr, push.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def env_of_app(platform: Platform, key: str) -> str:
    status, body = platform.get(HOST, f"/env/{key}")
    assert status == 200, body
    return body


def test_app_is_taken_from_the_checkout(
    platform: Platform, checkout: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(checkout)
    assert "web.1" in ok(platform.cli("ps"))
    assert json.loads(ok(platform.cli("apps:info", "--json")))["release"] == "v1"
    assert json.loads(ok(platform.cli("ps:scale", "--json")))["formation"] == {"web": 1}
    monkeypatch.chdir(tmp_path)
    outside = platform.cli("ps")
    assert outside.returncode == 2
    assert "No app given" in outside.stderr and "-a APP" in outside.stderr
    assert "web.1" in ok(platform.cli("ps", "-a", APP))


def test_config_values_reach_the_app_unchanged(
    platform: Platform, checkout: Path, tmp_path: Path
) -> None:
    out = ok(platform.cli("config:set", APP, f"K={VALUE}"))
    assert out == f"Setting K and restarting {APP}... done, v2\n"
    assert env_of_app(platform, "K") == VALUE
    assert ok(platform.cli("config:get", APP, "K")) == VALUE + "\n"
    assert json.loads(ok(platform.cli("config", APP, "--json"))) == {"config": {"K": VALUE}}

    script = tmp_path / "config.sh"
    script.write_text(ok(platform.cli("config", APP, "--shell")))
    evaluated = subprocess.run(
        ["sh", "-c", f'eval "$(cat {script})"; printf %s "$K"'],
        capture_output=True, text=True, timeout=10, check=True,
    )
    assert evaluated.stdout == VALUE


def test_config_unset(platform: Platform, checkout: Path) -> None:
    assert ok(platform.cli("config:unset", APP, "K")).endswith("done, v3\n")
    assert env_of_app(platform, "K") == "<unset>"
    missing = platform.cli("config:get", APP, "K")
    assert missing.returncode == 3 and "no config var K" in missing.stderr
    bad = platform.cli("config:set", APP, "1BAD=x")
    assert bad.returncode == 2 and "Invalid config key" in bad.stderr


def test_rollback_brings_back_old_code_and_config(platform: Platform, checkout: Path) -> None:
    deploy(checkout, "two")  # v4
    ok(platform.cli("config:set", APP, "K=newer"))  # v5
    assert platform.get(HOST) == (200, "two\n")

    assert ok(platform.cli("rollback", APP, "v2")) == f"Rolled back {APP} to v2: v6\n"
    assert platform.get(HOST) == (200, "one\n")
    assert env_of_app(platform, "K") == VALUE
    assert ok(platform.cli("config:get", APP, "K")) == VALUE + "\n"

    listed = json.loads(ok(platform.cli("releases", APP, "--json")))["releases"]
    assert [r["name"] for r in listed] == ["v6", "v5", "v4", "v3", "v2", "v1"]
    assert [r["current"] for r in listed] == [True] + [False] * 5
    assert listed[0]["description"] == "Rollback to v2"
    human = ok(platform.cli("releases", APP)).splitlines()
    assert human[0] == f"=== {APP} Releases - Current: v6"
    assert human[1].startswith("v6    Rollback to v2")

    gone = platform.cli("rollback", APP, "v99")
    assert gone.returncode == 3, gone.stderr


def replica_ids(platform: Platform) -> list[str]:
    replicas = json.loads(ok(platform.cli("ps", APP, "--json")))["replicas"]
    return [r["id"] for r in replicas if r["state"] == "running" and not r["retiring"]]


def test_restart_stop_start(platform: Platform, checkout: Path) -> None:
    before = replica_ids(platform)
    assert len(before) == 1
    assert ok(platform.cli("ps:restart", APP)) == f"Restarted {APP}'s replicas.\n"
    after = replica_ids(platform)
    assert len(after) == 1 and after != before
    assert platform.get(HOST) == (200, "one\n")
    ok(platform.cli("ps:restart", APP, "web"))
    assert replica_ids(platform) not in (before, after)
    unknown = platform.cli("ps:restart", APP, "worker")
    assert unknown.returncode != 0 and "worker" in unknown.stderr

    ok(platform.cli("ps:stop", APP))
    assert replica_ids(platform) == []
    assert platform.get(HOST)[0] != 200
    ok(platform.cli("ps:start", APP))
    assert len(replica_ids(platform)) == 1
    assert platform.get(HOST) == (200, "one\n")


def test_domains(platform: Platform, checkout: Path) -> None:
    assert platform.get(DOMAIN)[0] == 404
    assert ok(platform.cli("domains:add", APP, DOMAIN)) == f"Added {DOMAIN} to {APP}.\n"
    assert platform.get(DOMAIN) == (200, "one\n")
    ok(platform.cli("domains:add", APP, DOMAIN))  # again: nothing changes
    ok(platform.cli("apps:create", OTHER))
    try:
        taken = platform.cli("domains:add", OTHER, DOMAIN)
        assert taken.returncode == 5, taken.stderr
        assert f'already used by app "{APP}"' in taken.stderr
    finally:
        ok(platform.cli("apps:destroy", OTHER, "--force"))
    assert json.loads(ok(platform.cli("domains", APP, "--json"))) == {"domains": [DOMAIN]}
    assert DOMAIN in ok(platform.cli("apps:info", APP))
    ok(platform.cli("domains:remove", APP, DOMAIN))
    assert platform.get(DOMAIN)[0] == 404
    assert ok(platform.cli("domains", APP)) == f"{APP} has no custom domains.\n"
    assert platform.cli("domains:remove", APP, DOMAIN).returncode == 3


def test_commands_over_ssh(platform: Platform, checkout: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    ok(platform.cli("ssh-keys:add", "cli-key", input=key.with_suffix(".pub").read_text()))

    def ssh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-p", str(platform.ssh_port), "paas@127.0.0.1", command],
            input="", capture_output=True, text=True, timeout=120, check=False,
        )

    assert APP in ok(ssh("apps:list")).splitlines()
    assert ok(ssh(f"config:get {APP} K")) == VALUE + "\n"
    ok(ssh(f"config:set {APP} 'VIA_SSH=from ssh'"))
    assert env_of_app(platform, "VIA_SSH") == "from ssh"
    newest = json.loads(ok(platform.cli("releases", APP, "--json")))["releases"][0]
    assert newest["created_by"] == "cli-key"
    assert "config:set" in ok(ssh("help"))
    refused = ssh(f"apps:destroy {APP}")
    assert refused.returncode == 2 and "--force" in refused.stderr
    missing = ssh("ps helo")
    assert missing.returncode == 3 and 'App "helo" not found' in missing.stderr


def test_destroy(platform: Platform, checkout: Path) -> None:
    unconfirmed = platform.cli("apps:destroy", APP, input="")
    assert unconfirmed.returncode == 2 and "--force" in unconfirmed.stderr
    assert platform.get(HOST)[0] == 200

    settings = Settings.from_env(platform.env)
    store, images = services(settings).store, ImageStore(settings.images_dir)
    app_layers = {images.load(r.image_id).layers[-1] for r in store.releases(APP)}
    assert all((settings.layers_dir / d).is_dir() for d in app_layers)

    assert ok(platform.cli("apps:destroy", APP, "--force")) == f"Destroyed {APP}.\n"
    # Its own layers went with it; the stack's stayed for the others.
    assert not any((settings.layers_dir / d).exists() for d in app_layers)
    stack = json.loads((settings.stacks_dir / "bookworm.json").read_text())["layers"]
    assert all((settings.layers_dir / d).is_dir() for d in stack)
    assert platform.get(HOST)[0] == 404
    gone = platform.cli("ps", APP)
    assert gone.returncode == 3 and f'App "{APP}" not found' in gone.stderr
    assert APP not in ok(platform.cli("apps:list")).splitlines()
