"""The OCI config rendering, overlay options and runc message parsing (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paas.errors import InvalidInput, PlatformError
from paas.runtime.bundle import CAPABILITIES, overlay_options, render_config
from paas.runtime.shim import runc_message
from paas.runtime.spec import ContainerSpec, Mount
from paas.settings import Limits


def render(s: ContainerSpec, memsw: bool = True) -> dict[str, Any]:
    return render_config(
        s,
        rootfs=Path("/c/x/rootfs"),
        hosts_file=Path("/c/x/hosts"),
        resolv_file=Path("/c/x/resolv.conf"),
        cgroup_parent="paas-abc",
        memsw=memsw,
    )


def spec(**overrides: object) -> ContainerSpec:
    fields: dict[str, object] = {
        "id": "web-1",
        "lowers": (Path("/l/app"), Path("/l/stack")),
        "command": ("gunicorn", "app:app"),
        "env": {"PORT": "5000"},
        "limits": Limits(memory_bytes=256 * 1024**2, cpu=0.5, pids=128),
        "netns": Path("/run/netns/abc-123"),
        "hostname": "web-1",
        "cwd": "/app",
    }
    fields.update(overrides)
    return ContainerSpec(**fields)  # type: ignore[arg-type]


def test_process_runs_the_command_under_tini() -> None:
    process = render(spec(), memsw=True)["process"]
    assert process["args"] == ["/usr/bin/tini", "-g", "--", "gunicorn", "app:app"]
    assert process["terminal"] is False
    assert process["cwd"] == "/app"
    assert "PORT=5000" in process["env"]
    assert any(e.startswith("PATH=/usr/local/sbin:") for e in process["env"])
    assert process["capabilities"]["bounding"] == list(CAPABILITIES)
    assert len(CAPABILITIES) == 14 and "CAP_SYS_ADMIN" not in CAPABILITIES


def test_any_user_may_listen_below_1024_in_its_own_netns() -> None:
    sysctl = {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert render(spec())["linux"]["sysctl"] == sysctl
    assert "sysctl" not in render(spec(netns=None))["linux"]  # the host's netns: untouched


def test_image_path_wins_over_the_default() -> None:
    config = render(spec(env={"PATH": "/app/bin"}), memsw=False)
    assert [e for e in config["process"]["env"] if e.startswith("PATH=")] == ["PATH=/app/bin"]


def test_namespaces_join_the_given_netns_or_share_the_hosts() -> None:
    joined = render(spec(), memsw=True)["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/abc-123"} in joined
    assert {n["type"] for n in joined} == {"pid", "ipc", "uts", "mount", "network"}
    host = render(spec(netns=None), memsw=True)["linux"]["namespaces"]
    assert {n["type"] for n in host} == {"pid", "ipc", "uts", "mount"}


@pytest.mark.parametrize("memsw", [True, False])
def test_limits_and_cgroup(memsw: bool) -> None:
    linux = render(spec(), memsw=memsw)["linux"]
    assert linux["cgroupsPath"] == "/paas-abc/web-1"
    resources = linux["resources"]
    expected = {"limit": 256 * 1024**2} | ({"swap": 256 * 1024**2} if memsw else {})
    assert resources["memory"] == expected
    assert resources["cpu"] == {"quota": 50000, "period": 100000}
    assert resources["pids"] == {"limit": 128}
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]


def test_mounts_root_and_hostname() -> None:
    extra = (Mount(Path("/host/ca.crt"), "/etc/ssl/ca.crt"), Mount(Path("/cache"), "/cache", False))
    config = render(spec(mounts=extra), memsw=True)
    assert config["root"] == {"path": "/c/x/rootfs", "readonly": False}
    assert config["hostname"] == "web-1"
    binds = {m["destination"]: m for m in config["mounts"] if m["type"] == "bind"}
    assert binds["/etc/hosts"]["source"] == "/c/x/hosts"
    assert "ro" in binds["/etc/hosts"]["options"] and "ro" in binds["/etc/resolv.conf"]["options"]
    assert binds["/etc/ssl/ca.crt"]["options"] == ["rbind", "ro"]
    assert binds["/cache"] == {
        "destination": "/cache", "type": "bind", "source": "/cache", "options": ["rbind", "rw"]
    }  # fmt: skip
    assert {m["destination"] for m in config["mounts"]} >= {"/proc", "/dev", "/sys", "/dev/pts"}


def test_overlay_options_put_the_top_layer_first() -> None:
    options = overlay_options((Path("/l/top"), Path("/l/base")), Path("/c/up"), Path("/c/work"))
    assert options == "lowerdir=/l/top:/l/base,upperdir=/c/up,workdir=/c/work"


def test_overlay_options_refuse_what_the_kernel_would() -> None:
    with pytest.raises(InvalidInput):
        overlay_options((), Path("/u"), Path("/w"))
    with pytest.raises(InvalidInput, match="without ':'"):
        overlay_options((Path("/l/a:b"),), Path("/u"), Path("/w"))
    with pytest.raises(PlatformError, match="shorter layer paths"):
        many = tuple(Path(f"/layers/{'x' * 60}{i}") for i in range(80))
        overlay_options(many, Path("/u"), Path("/w"))


def test_runc_message_keeps_only_the_msg() -> None:
    stderr = 'time="2026-01-01T00:00:00Z" level=error msg="container \\"x\\" does not exist"\n'
    assert runc_message(stderr) == 'container "x" does not exist'
    assert runc_message("plain failure\n") == "plain failure"
