"""resource:limit changes a running replica's cgroup limits in place (no restart), refuses
limits no app can live with, and resource:limit:clear goes back to the defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paas.settings import Settings
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "limited"
CGROUP = Path("/sys/fs/cgroup")


def web_replica(platform: Platform) -> str:
    ps = json.loads(platform.cli("ps", APP, "--json").stdout)["replicas"]
    (replica,) = [r["id"] for r in ps if r["state"] == "running" and not r["retiring"]]
    return str(replica)


def cgroup_value(platform: Platform, controller: str, cid: str, name: str) -> str:
    parent = Settings.from_env(platform.env).cgroup_parent
    return (CGROUP / controller / parent / cid / name).read_text().strip()


def test_limits_apply_live_and_are_validated(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "limits")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    cid = web_replica(platform)
    assert cgroup_value(platform, "memory", cid, "memory.limit_in_bytes") == str(512 * 1024**2)

    done = platform.cli("resource:limit", APP, "--memory", "128m", "--cpu", "0.5",
                        "--pids", "100")
    assert done.returncode == 0, done.stderr
    assert web_replica(platform) == cid  # applied in place, not by a restart
    assert cgroup_value(platform, "memory", cid, "memory.limit_in_bytes") == str(128 * 1024**2)
    assert cgroup_value(platform, "cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert cgroup_value(platform, "pids", cid, "pids.max") == "100"
    shown = json.loads(platform.cli("resource", APP, "--json").stdout)["limits"]
    assert shown["web"] == {"memory_bytes": 128 * 1024**2, "cpu": 0.5, "pids": 100}
    assert platform.get(f"{APP}.paas.test")[0] == 200

    for bad in (["--memory", "1k"], ["--cpu", "0"], ["--pids", "1"], ["--memory", "lots"]):
        refused = platform.cli("resource:limit", APP, *bad)
        assert refused.returncode == 2, (bad, refused.stderr)
    assert cgroup_value(platform, "pids", cid, "pids.max") == "100"

    cleared = platform.cli("resource:limit:clear", APP)
    assert cleared.returncode == 0, cleared.stderr
    assert cgroup_value(platform, "memory", web_replica(platform),
                        "memory.limit_in_bytes") == str(512 * 1024**2)
