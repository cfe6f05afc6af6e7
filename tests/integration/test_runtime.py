"""Runtime against real runc, overlayfs, cgroups and network namespaces."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from paas.errors import Conflict, PlatformError
from paas.model import APP_USER
from paas.runtime.runtime import Runtime, RunTimedOut, systemd_runs_host
from paas.runtime.spec import Mount
from tests.integration.fixtures_runtime import Sandbox

pytestmark = pytest.mark.root
HTTPD = ("httpd", "-f", "-p", "5000", "-h", "/www")


def _get(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def test_httpd_answers_over_the_bridge_and_stops_on_term(sandbox: Sandbox) -> None:
    sandbox.network.ensure_bridge()
    net = sandbox.network.attach("web1")
    spec = sandbox.spec("web1", HTTPD, netns_path=net.netns_path, labels={"app": "hello"})
    began = time.monotonic()
    info = sandbox.runtime.start(spec)
    body = _get(f"http://{net.address}:5000/", time.monotonic() + 10)
    listening = time.monotonic() - began
    assert body == "hello from busybox\n"
    assert info.status == "running" and info.pid
    assert listening < 2, listening
    got = sandbox.runtime.get("web1")
    assert got is not None and got.status == "running" and got.labels == {"app": "hello"}
    assert [i.id for i in sandbox.runtime.list()] == ["web1"]
    shim_pid = int((sandbox.runtime.containers_dir / "web1" / "shim.pid").read_text())
    assert _ppid(info.pid) == shim_pid  # the shim holds the init, not this process
    began = time.monotonic()
    sandbox.runtime.stop("web1", grace=10)
    assert time.monotonic() - began < 3  # tini forwarded TERM; no KILL needed
    assert sandbox.runtime.get("web1") is None
    sandbox.network.detach("web1")


def test_stop_kills_what_ignores_term(sandbox: Sandbox) -> None:
    spec = sandbox.spec("stubborn", ("sh", "-c", "trap '' TERM; echo up; while :; do :; done"))
    sandbox.runtime.start(spec)
    _wait_for_log(sandbox, "stubborn", "up")
    began = time.monotonic()
    sandbox.runtime.stop("stubborn", grace=0.5)
    assert 0.5 <= time.monotonic() - began < 5
    assert sandbox.runtime.get("stubborn") is None


def test_exit_code_and_log_are_recorded(sandbox: Sandbox) -> None:
    sandbox.runtime.start(sandbox.spec("exit7", ("sh", "-c", "echo out; echo err >&2; exit 7")))
    info = sandbox.wait_stopped("exit7")
    assert (info.exit_code, info.oom_killed, info.pid) == (7, False, None)
    assert sandbox.runtime.log_path("exit7").read_text() == "out\nerr\n"
    sandbox.runtime.remove("exit7")
    sandbox.runtime.remove("exit7")  # idempotent
    assert sandbox.runtime.get("exit7") is None


def test_oom_kill_is_reported(sandbox: Sandbox) -> None:
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    sandbox.runtime.start(sandbox.spec("hog", ("sh", "-c", hog), memory=32 * 1024**2))
    info = sandbox.wait_stopped("hog", timeout=30)
    assert info.oom_killed
    assert info.exit_code != 0
    assert "survived" not in sandbox.runtime.log_path("hog").read_text()


def test_start_failure_carries_runc_message_and_cleans_up(sandbox: Sandbox) -> None:
    missing = sandbox.spec("badmount", ("true",), mounts=(Mount(Path("/no/such"), "/data"),))
    with pytest.raises(PlatformError, match="no such file or directory"):
        sandbox.runtime.start(missing)
    assert sandbox.runtime.get("badmount") is None


def test_a_supervisor_that_cannot_start_says_why_and_cleans_up(sandbox: Sandbox) -> None:
    if systemd_runs_host():
        pytest.skip("systemd runs this host: its scopes would be made")
    rt = sandbox.runtime
    scoped = Runtime(rt.runc_root, rt.containers_dir, rt.cgroup_parent,
                     systemd_slice="paas-test.slice")  # fmt: skip
    with pytest.raises(PlatformError, match=r"exited without starting it: .*systemd"):
        scoped.start(sandbox.spec("noscope", ("true",)))
    assert rt.get("noscope") is None


def test_duplicate_id_conflicts(sandbox: Sandbox) -> None:
    sandbox.runtime.start(sandbox.spec("dup", ("sleep", "60")))
    with pytest.raises(Conflict):
        sandbox.runtime.start(sandbox.spec("dup", ("sleep", "60")))
    assert sandbox.runtime.get("dup") is not None


def test_remove_cleans_a_container_whose_init_was_killed_from_outside(sandbox: Sandbox) -> None:
    sandbox.network.ensure_bridge()
    net = sandbox.network.attach("victim")
    spec = sandbox.spec("victim", ("sleep", "600"), netns_path=net.netns_path)
    info = sandbox.runtime.start(spec)
    assert info.pid is not None
    os.kill(info.pid, 9)
    stopped = sandbox.wait_stopped("victim")
    assert stopped.exit_code == 137
    sandbox.runtime.remove("victim")
    sandbox.network.detach("victim")
    assert not sandbox.leftovers(final=False)


def test_remove_tolerates_half_created_containers(sandbox: Sandbox) -> None:
    sandbox.runtime._prepare(sandbox.spec("half", ("true",)))  # mounted, runc never ran
    assert sandbox.runtime.get("half") is not None
    assert sandbox.runtime.get("half").status == "stopped"  # type: ignore[union-attr]
    sandbox.runtime.remove("half")
    sandbox.runtime.remove("never-existed")
    assert sandbox.runtime.list() == []


def test_containers_outlive_the_process_that_started_them(sandbox: Sandbox) -> None:
    runtime = sandbox.runtime
    script = (
        "import sys; from pathlib import Path; from paas.runtime.runtime import Runtime; "
        "from paas.runtime.spec import ContainerSpec; from paas.settings import Limits; "
        f"rt = Runtime(Path({str(runtime.runc_root)!r}), Path({str(runtime.containers_dir)!r}), "
        f"{runtime.cgroup_parent!r}); "
        f"rt.start(ContainerSpec(id='orphan', lowers=(Path({str(sandbox.layer)!r}),), "
        "command=('sleep', '600'), env={}, limits=Limits(64 << 20, 1.0, 64), netns=None))"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    info = runtime.get("orphan")
    assert info is not None and info.status == "running"
    runtime.stop("orphan", grace=5)


def test_run_streams_lines_live_and_returns_the_exit_code(sandbox: Sandbox) -> None:
    script = "for i in 1 2 3; do echo line $i; sleep 0.3; done; echo oops >&2; exit 3"
    seen: list[tuple[float, str]] = []
    code = sandbox.runtime.run(
        sandbox.spec("build1", ("sh", "-c", script)),
        lambda line: seen.append((time.monotonic(), line)),
        timeout=30,
    )
    assert code == 3
    assert [line for _, line in seen] == ["line 1", "line 2", "line 3", "oops"]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    assert all(gap > 0.2 for gap in gaps), gaps
    assert sandbox.runtime.list() == []


def test_run_times_out_and_cleans_up(sandbox: Sandbox) -> None:
    began = time.monotonic()
    with pytest.raises(RunTimedOut, match="time limit of 1 s"):
        sandbox.runtime.run(sandbox.spec("slow", ("sleep", "60")), lambda _: None, timeout=1)
    assert time.monotonic() - began < 5
    assert sandbox.runtime.list() == []


def test_run_keeps_the_callers_upper_as_a_layer(sandbox: Sandbox, tmp_path: Path) -> None:
    upper = tmp_path / "layers" / "app"
    source = tmp_path / "src"
    source.mkdir()
    (source / "input").write_text("data\n")
    spec = sandbox.spec(
        "build2",
        ("sh", "-c", "cp /data/input /made && rm /www/index.html"),
        upper=upper,
        mounts=(Mount(source, "/data"),),  # /data exists in the image: nothing lands in upper
    )
    assert sandbox.runtime.run(spec, lambda _: None, timeout=30) == 0
    assert (upper / "made").read_text() == "data\n"
    assert os.stat(upper / "www/index.html").st_rdev == 0  # an overlay whiteout
    assert sorted(p.name for p in upper.iterdir()) == ["made", "www"]
    assert sorted(p.name for p in upper.parent.iterdir()) == ["app"]  # workdir removed


def _wait_for_log(sandbox: Sandbox, cid: str, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in sandbox.runtime.log_path(cid).read_text():
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.01)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


CONFINEMENT_PROBE = (
    "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; "
    "mkdir -p /m; mount -t tmpfs none /m 2>/dev/null && echo mounted || echo mount-refused; "
    "unshare -n true 2>/dev/null && echo unshared || echo unshare-refused; "
    "mknod /n c 1 3 2>/dev/null && echo mknod-done || echo mknod-refused; "
    "cat /proc/kcore >/dev/null 2>&1 && echo kcore-read || echo kcore-masked"
)


@pytest.mark.parametrize("confined", [True, False])
def test_app_containers_are_confined(sandbox: Sandbox, confined: bool) -> None:
    cid = f"conf{int(confined)}"
    spec = replace(sandbox.spec(cid, ("sh", "-c", CONFINEMENT_PROBE)), confined=confined)
    sandbox.runtime.start(spec)
    assert sandbox.wait_stopped(cid).exit_code == 0
    out = sandbox.runtime.log_path(cid).read_text()
    sandbox.runtime.remove(cid)
    status = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    caps = int(status["CapEff"], 16)
    net_raw, mknod = 1 << 13, 1 << 27
    assert "kcore-masked" in out
    if confined:
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
        assert not caps & (net_raw | mknod)
        assert {"mount-refused", "unshare-refused", "mknod-refused"} <= set(out.split())
    else:  # build containers keep Docker's defaults
        assert status["NoNewPrivs"] == "0" and caps & net_raw and caps & mknod


APP_USER_PROBE = (
    "grep -E '^(Uid|Gid|CapEff):' /proc/self/status; "
    "echo x 2>/dev/null >/www/index.html && echo root-file-written || echo root-file-refused; "
    "httpd -p 80 -h /www && echo listening-on-80 || echo port-80-refused"
)


def test_apps_run_as_their_user_with_no_capability(sandbox: Sandbox) -> None:
    sandbox.network.ensure_bridge()
    net = sandbox.network.attach("appuser")
    spec = sandbox.spec(
        "appuser", ("sh", "-c", APP_USER_PROBE), netns_path=net.netns_path,
        user=APP_USER, confined=True,
    )  # fmt: skip
    sandbox.runtime.start(spec)
    assert sandbox.wait_stopped("appuser").exit_code == 0
    out = sandbox.runtime.log_path("appuser").read_text()
    sandbox.runtime.remove("appuser")
    sandbox.network.detach("appuser")
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    uid, gid = APP_USER
    assert status["Uid"].split() == [str(uid)] * 4, out  # real, effective, saved, fs
    assert status["Gid"].split() == [str(gid)] * 4, out
    assert int(status["CapEff"], 16) == 0, out
    assert "root-file-refused" in out, out  # the image's files are root's
    assert "listening-on-80" in out, out  # low ports are the app's own netns's
