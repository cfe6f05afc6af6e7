"""The Celery worker is killed (SIGKILL, it and its pool processes) in the middle of a scale
1 -> 4, as soon as a new replica's bundle is on disk: once a worker runs again (the platform
is started again: `paas-platform run` stops its other processes when one dies), the app
converges to four replicas, and the half-started replica left no netns, veth, mount,
cgroup, runc state or container dir behind: one of each is left per running container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from paas.runtime import cgroups
from paas.settings import Settings
from tests.e2e.platform_fixture import Platform, runc_list
from tests.e2e.test_push_deploy import _netns_of, api, commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "steadfast"
HOST = f"{APP}.paas.test"
APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return os.environ["DYNO"]
"""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _worker_pids(platform: Platform) -> list[int]:
    """The Celery worker's main process and its pool processes."""
    assert platform.proc is not None
    for pid in _children(platform.proc.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"celery" in cmdline[1] and b"worker" in cmdline:
            return [pid, *_children(pid)]
    raise AssertionError("no Celery worker among the platform's processes")


def _footprint(settings: Settings) -> dict[str, set[str]]:
    """What the platform's containers hold on the host, by kind."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    with IPRoute() as ipr:
        veths = {
            str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.get_links()
            if str(link.get_attr("IFLA_IFALIAS") or "").startswith(f"paas {settings.instance} ")
        }
    (memory,) = [d for d in cgroups.parent_dirs(settings.cgroup_parent) if "memory" in str(d)]
    return {
        "runc": {str(c["id"]) for c in runc_list(settings.runc_root)},
        "netns": _netns_of(settings.instance),
        "veth": veths,
        "mount": {line.split()[4] for line in mounts if str(settings.containers_dir) in line},
        "cgroup": {d.name for d in memory.iterdir() if d.is_dir()},
        "dir": {d.name for d in settings.containers_dir.iterdir()},
    }


def _replicas(platform: Platform) -> list[dict[str, Any]]:
    return list(json.loads(platform.cli("ps", APP, "--json").stdout)["replicas"])


def test_a_worker_killed_during_a_start_converges(platform: Platform, tmp_path: Path) -> None:
    settings = Settings.from_env(platform.env)
    repo = make_app(tmp_path / APP, "unused")
    (repo / "app.py").write_text(APP_PY)
    commit(repo, "dyno")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    try:
        assert platform.cli("ps:scale", APP, "web=4").returncode == 0
        deadline = time.monotonic() + 60
        while not (started := [r for r in _replicas_on_disk(settings) if r["dyno"] != "web.1"]):
            assert time.monotonic() < deadline, "no replica start seen"
            time.sleep(0.01)  # a new replica's bundle is there: its start is under way
        for pid in _worker_pids(platform):
            os.kill(pid, signal.SIGKILL)
        assert platform.proc is not None
        assert platform.proc.wait(timeout=60) == 1  # it noticed, and stopped the rest
        half_started = [r["id"] for r in _replicas_on_disk(settings) if r["dyno"] != "web.1"]
        print(f"\nkilled while starting {started}; on disk then: {half_started}")
        platform.start()

        def converged() -> bool:
            running = [r for r in _replicas(platform) if r["state"] == "running"]
            if sorted(r["dyno"] for r in running) != ["web.1", "web.2", "web.3", "web.4"]:
                return False
            containers = runc_list(settings.runc_root)  # (other apps of the session too)
            return all(c["status"] == "running" for c in containers)

        deadline = time.monotonic() + 120
        while not converged():
            assert time.monotonic() < deadline, (_replicas(platform), half_started)
            time.sleep(1)
        answered: set[str] = set()
        deadline = time.monotonic() + 60
        while len(answered) < 4 and time.monotonic() < deadline:  # each, once it is routed
            answered.add(platform.get(HOST, timeout=5)[1])
            time.sleep(0.05)
        assert answered == {"web.1", "web.2", "web.3", "web.4"}
        # Nothing of the interrupted start is left over: exactly one netns, veth, mount,
        # cgroup and container dir per container runc runs (the session's other apps too).
        deadline = time.monotonic() + 60
        while True:
            held = _footprint(settings)
            counts = {kind: len(found) for kind, found in held.items()}
            if len(set(counts.values())) == 1 or time.monotonic() > deadline:
                break
            time.sleep(1)  # a replica of another app may be draining
        assert len(set(counts.values())) == 1, held
        assert held["runc"] == held["cgroup"] == held["dir"], held
        # The half-started replica was either taken on as it was, or removed completely.
        kept = {r["id"] for r in _replicas(platform)}
        assert not [c for c in half_started if c not in kept and c in held["dir"]], half_started
    finally:
        platform.cli("apps:destroy", APP, "--force")


def _replicas_on_disk(settings: Settings) -> list[dict[str, str]]:
    """The containers of the app as the runtime's dirs tell (the API is down)."""
    out = []
    for directory in settings.containers_dir.iterdir():
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        labels = meta.get("labels", {})
        if labels.get("app") == APP:
            out.append({"id": meta["id"], "dyno": f"{labels['process_type']}.{labels['index']}"})
    return out


def test_a_build_cut_short_by_a_killed_worker_fails_with_a_message(
    platform: Platform, tmp_path: Path
) -> None:
    app = "cutshort"
    repo = make_app(tmp_path / app, "unused")
    (repo / "Procfile").write_text(
        "web: gunicorn app:app --bind 0.0.0.0:$PORT\nrelease: sleep 20\n"
    )
    commit(repo, "a release phase that takes a while")
    push = subprocess.Popen(
        ["git", "-C", str(repo), "push", http_remote(platform, app), "master"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "running `sleep 20`" not in platform.cli("logs", app).stdout:
            assert time.monotonic() < deadline, "the release phase never started"
            time.sleep(0.2)
        (build,) = api(platform, "GET", f"/apps/{app}/builds")[1]["builds"]
        assert build["status"] == "running", build
        for pid in _worker_pids(platform):
            os.kill(pid, signal.SIGKILL)
        assert platform.proc is not None
        assert platform.proc.wait(timeout=60) == 1
        platform.start()
        (build,) = api(platform, "GET", f"/apps/{app}/builds")[1]["builds"]
        assert build["status"] == "failed", build
        assert "worker stopped while this build ran" in build["message"], build
        output = platform.cli("builds:output", app, build["id"])
        assert "Push again." in output.stdout, output
        assert api(platform, "GET", f"/apps/{app}")[1]["release"] is None
    finally:
        push.kill()
        push.wait(timeout=30)
        platform.cli("apps:destroy", app, "--force")
