"""ports:set: the router listens for an app on a host port of its own (any Host header),
and a new container port restarts the replicas onto it; the platform's ports are refused."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.e2e.platform_fixture import Platform, free_port
from tests.e2e.test_push_deploy import git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "ported"


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        return resp.read().decode()


def test_ports_set_listens_on_its_own_port(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "ports")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    port = free_port()
    done = platform.cli("ports:set", APP, f"http:{port}:5000")
    assert done.returncode == 0, done.stderr
    assert fetch(port) == "ports from ported\n"

    moved = platform.cli("ports:set", APP, f"http:{port}:6000")  # the app binds $PORT
    assert moved.returncode == 0, moved.stderr
    assert fetch(port) == "ports from ported\n"
    assert platform.get(f"{APP}.paas.test") == (200, "ports from ported\n")

    taken = platform.cli("ports:set", APP, f"http:{platform.http_port}:5000")
    assert taken.returncode == 5 and "platform's own" in taken.stderr
    assert platform.cli("ports", APP).stdout.strip() == f"http:{port}:6000"

    assert platform.cli("ports:clear", APP).returncode == 0
    with pytest.raises(OSError):
        fetch(port)
