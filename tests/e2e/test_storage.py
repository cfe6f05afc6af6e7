"""storage:mount: a host dir in every replica whose files survive a redeploy; paths
outside the storage dirs and the platform's own mount points are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.settings import Settings
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "stored"
APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    path = "/data/visits"
    count = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(count))
    return f"{VERSION} visit {count}\\n"
"""


def test_storage_survives_a_redeploy(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "unused")
    (repo / "app.py").write_text('VERSION = "one"\n' + APP_PY)
    commit(repo, "one")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    host = Settings.from_env(platform.env).storage_dirs[0] / APP
    done = platform.cli("storage:mount", APP, f"{host}:/data")
    assert done.returncode == 0, done.stderr
    assert platform.get(f"{APP}.paas.test") == (200, "one visit 1\n")
    assert platform.get(f"{APP}.paas.test") == (200, "one visit 2\n")
    assert (host / "visits").read_text() == "2"

    (repo / "app.py").write_text('VERSION = "two"\n' + APP_PY)
    commit(repo, "two")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    assert platform.get(f"{APP}.paas.test") == (200, "two visit 3\n")
    assert platform.cli("storage", APP).stdout.strip() == f"{host}:/data"

    for bad in ("/etc:/data", f"{host}:/proc/x", f"{host}:/app", "data:/data",
                f"{host}/../x:/d"):
        refused = platform.cli("storage:mount", APP, bad)
        assert refused.returncode == 2, (bad, refused.stderr)

    assert platform.cli("storage:unmount", APP, f"{host}:/data").returncode == 0
    assert platform.cli("storage", APP).stdout.strip() == "No storage mounted."
    assert (host / "visits").read_text() == "3"  # the data stayed on the host
