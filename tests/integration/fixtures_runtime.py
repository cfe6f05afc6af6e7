"""Fixtures for the runtime and network integration tests: a tiny busybox + tini image layer
and a sandbox (runtime, network on its own bridge, subnet, nftables table, netns prefix and
cgroup parent) that is torn down and checked for leftovers after each test, even a failing one."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from bench.common import build_busybox_layer
from paas.network import Network
from paas.runtime import cgroups
from paas.runtime.bundle import mount_points
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerInfo, ContainerSpec
from paas.settings import Limits
from tests.e2e.platform_fixture import free_port


def nft_tables() -> list[str]:
    """The names of the host's ``inet`` nftables tables."""
    listed = subprocess.run(
        ["nft", "list", "tables", "inet"], capture_output=True, text=True, timeout=30, check=True
    )
    return [line.split()[-1] for line in listed.stdout.splitlines() if line.startswith("table ")]


def _free_subnet() -> IPv4Network:
    """A /24 in 198.19.64.0/18 that no interface of this host uses (198.19/16: RFC 2544)."""
    with IPRoute() as ipr:
        used = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2)}
    for _ in range(100):
        subnet = IPv4Network(f"198.19.{secrets.choice(range(64, 128))}.0/24")
        if not any(IPv4Address(a) in subnet for a in used):
            return subnet
    raise RuntimeError("no free test subnet")


@dataclass
class Sandbox:
    base: Path
    layer: Path
    runtime: Runtime
    network: Network
    tag: str

    def spec(
        self,
        cid: str,
        command: Sequence[str],
        *,
        netns_path: Path | None = None,
        memory: int = 64 * 1024**2,
        **kwargs: Any,
    ) -> ContainerSpec:
        return ContainerSpec(
            id=cid,
            lowers=(self.layer,),
            command=tuple(command),
            env={"HOME": "/"},
            limits=Limits(memory_bytes=memory, cpu=1.0, pids=64),
            netns=netns_path,
            **kwargs,
        )

    def wait_stopped(self, cid: str, timeout: float = 10.0) -> ContainerInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.runtime.get(cid)
            if info is not None and info.status == "stopped" and info.exit_code is not None:
                return info
            time.sleep(0.02)
        raise AssertionError(f"{cid} did not stop: {self.runtime.get(cid)}")

    def leftovers(self, final: bool = True) -> list[str]:
        """What is left of this sandbox's containers; with ``final``, of the bridge and parent
        cgroups too."""
        found = [f"mount {m}" for m in mount_points() if m.is_relative_to(self.base)]
        found += [f"netns {n}" for n in netns.listnetns() if n.startswith(f"{self.tag}-")]
        with IPRoute() as ipr:
            for link in ipr.get_links():
                alias = link.get_attr("IFLA_IFALIAS") or ""
                name = link.get_attr("IFLA_IFNAME")
                if alias.startswith(f"paas {self.tag} ") or (final and name == self.network.bridge):
                    found.append(f"link {name}")
        if final and self.network.bridge in nft_tables():
            found.append(f"nftables table {self.network.bridge}")
        for parent in cgroups.parent_dirs(self.runtime.cgroup_parent):
            found += [f"cgroup {d}" for d in parent.iterdir() if d.is_dir()]
            found += [f"cgroup {parent}"] if final else []
        runc_root = self.runtime.runc_root
        if runc_root.is_dir():
            found += [f"runc state {p.name}" for p in runc_root.iterdir()]
        containers = self.runtime.containers_dir
        if containers.is_dir():
            found += [f"container dir {p.name}" for p in containers.iterdir()]
        return found


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layer(tmp_path_factory.mktemp("layers") / "busybox")


@pytest.fixture
def sandbox(tmp_path: Path, busybox_layer: Path) -> Iterator[Sandbox]:
    if os.geteuid() != 0 or shutil.which("runc") is None:
        pytest.skip("needs root and runc")
    tag = "t" + secrets.token_hex(3)
    runtime = Runtime(tmp_path / "runc", tmp_path / "containers", f"paas-test-{tag}")
    network = Network(f"pt{tag}", _free_subnet(), tag, tmp_path / "leases", free_port())
    box = Sandbox(tmp_path, busybox_layer, runtime, network, tag)
    try:
        yield box
    finally:
        errors = []

        def remove_all() -> None:
            for info in runtime.list():
                runtime.remove(info.id)

        for step in (remove_all, network.destroy, runtime.prune_cgroups):
            try:
                step()
            except Exception as exc:
                errors.append(repr(exc))
        left = box.leftovers()
        assert not errors and not left, f"teardown errors: {errors}; left behind: {left}"
