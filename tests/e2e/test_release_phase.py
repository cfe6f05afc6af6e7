"""The Procfile's release command runs once per release, before it goes live; when it
fails, the release fails and the running one keeps serving with its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.model import APP_USER
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "phased"
PROCFILE = """\
web: gunicorn app:app --bind 0.0.0.0:$PORT --workers 1
release: sh -c 'echo "migrating for $PAAS_APP as $(id -u)"; test "${FAIL_RELEASE:-0}" != 1'
"""


def test_release_command_runs_before_the_release_and_can_stop_it(
    platform: Platform, tmp_path: Path
) -> None:
    repo = make_app(tmp_path / APP, "phase one")
    (repo / "Procfile").write_text(PROCFILE)
    commit(repo, "with a release command")
    push = git(repo, "push", http_remote(platform, APP), "master")
    # as the user of the app's processes
    assert f"remote:        migrating for phased as {APP_USER[0]}" in push.stderr, push.stderr
    assert platform.get(f"{APP}.paas.test") == (200, "phase one from phased\n")
    ps = platform.cli("ps", APP, "--json")
    assert '"release.' not in ps.stdout  # the release command is not a replica

    failed = platform.cli("config:set", APP, "FAIL_RELEASE=1")
    assert failed.returncode != 0
    assert "release command" in failed.stderr and "failed (exit 1)" in failed.stderr
    assert "FAIL_RELEASE" not in platform.cli("config", APP).stdout
    assert platform.get(f"{APP}.paas.test") == (200, "phase one from phased\n")
    releases = platform.cli("releases", APP).stdout
    assert "v2" not in releases
