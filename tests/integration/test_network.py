"""Network against the real kernel: bridge, netns, veth, addresses, orphans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from paas.errors import PlatformError
from paas.network import Orphans
from tests.integration.fixtures_runtime import Sandbox, nft_tables
from tests.integration.test_runtime import HTTPD

pytestmark = pytest.mark.root


def _inside(name: str) -> tuple[list[str], list[str]]:
    """(addresses of eth0, gateways of default routes) inside netns ``name``."""
    with IPRoute(netns=name, flags=0) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        addresses = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=eth0, family=2)]
        gateways = [r.get_attr("RTA_GATEWAY") for r in ipr.get_default_routes(family=2)]
    return addresses, gateways


def test_bridge_is_idempotent_and_holds_the_gateway(sandbox: Sandbox) -> None:
    network = sandbox.network
    with pytest.raises(PlatformError, match=r"Bridge \S+ is missing"):
        network.attach("early")
    assert network.attached() == {}
    network.ensure_bridge()
    network.ensure_bridge()
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=network.bridge)
        addresses = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)]
    assert addresses == [str(network.gateway)]
    assert network.gateway == next(network.subnet.hosts())


def test_attach_detach_and_lowest_free_address(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    first = network.attach("c1")
    second = network.attach("c2")
    base = network.subnet.network_address
    assert (first.address, second.address) == (base + 2, base + 3)
    assert network.attach("c1") == first  # idempotent
    assert first.netns_path == Path("/run/netns") / first.netns_name
    assert first.netns_name.startswith(f"{sandbox.tag}-") and len(first.netns_name) == 18
    assert _inside(first.netns_name) == ([str(first.address)], [str(network.gateway)])
    assert set(network.attached()) == {"c1", "c2"}
    network.detach("c1")
    network.detach("c1")  # idempotent
    assert not os.path.exists(first.netns_path)
    assert network.attach("c3").address == base + 2  # the freed address comes back first
    assert network.orphans() == Orphans()


def test_attach_repairs_a_half_made_attachment(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    attachment = network.attach("c1")
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=network.veth_name("c1"))[0])
    assert network.attach("c1") == attachment
    assert _inside(attachment.netns_name)[0] == [str(attachment.address)]


def test_orphans_are_found_and_removed(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    kept = network.attach("kept")
    lost = network.attach("lost")
    (network.leases.directory / str(lost.address)).unlink()  # e.g. a crash mid-detach
    netns.create(f"{sandbox.tag}-stray")
    orphans = network.orphans()
    assert orphans.netns == tuple(sorted([lost.netns_name, f"{sandbox.tag}-stray"]))
    assert orphans.veths == (network.veth_name("lost"),)
    assert network.remove_orphans() == orphans
    assert network.orphans() == Orphans()
    assert network.attached() == {"kept": kept}
    assert os.path.exists(kept.netns_path)


def test_destroy_removes_everything(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    network.attach("c1")
    network.destroy()
    network.destroy()
    assert network.attached() == {}
    assert not sandbox.leftovers()


def _host_neighbour(bridge: str, address: str) -> list[str]:
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=bridge)
        return [
            n.get_attr("NDA_LLADDR")
            for n in ipr.get_neighbours(ifindex=index, family=2)
            if n.get_attr("NDA_DST") == address and n.get_attr("NDA_LLADDR")
        ]


def test_a_reused_address_does_not_keep_the_old_mac(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    first = network.attach("c1")
    with IPRoute() as ipr:  # the host learns c1's MAC, as traffic to a replica would
        (index,) = ipr.link_lookup(ifname=network.bridge)
        with IPRoute(netns=first.netns_name, flags=0) as inside:
            eth0 = inside.link_lookup(ifname="eth0")[0]
            mac = inside.get_links(eth0)[0].get_attr("IFLA_ADDRESS")
        ipr.neigh("replace", dst=str(first.address), lladdr=mac, ifindex=index,
                  state=0x02)  # NUD_REACHABLE
    assert _host_neighbour(network.bridge, str(first.address)) == [mac]
    network.detach("c1")
    second = network.attach("c2")
    assert second.address == first.address
    assert _host_neighbour(network.bridge, str(second.address)) == []



CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def _connect(
    address: object, port: int, netns_name: str | None = None, timeout: float = 10
) -> str:
    """``connected``, or the name of the error that ended a TCP connect to ``address:port``
    from netns ``netns_name`` (None: from the host)."""
    inside = ["ip", "netns", "exec", netns_name] if netns_name else []
    done = subprocess.run(
        [*inside, sys.executable, "-S", "-c", CONNECT, str(address), str(port), str(timeout)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def host_ports(sandbox: Sandbox) -> Iterator[tuple[int, int]]:
    """(a port of some host service, the router's port): both listening on all addresses,
    as sshd or an API bound to 0.0.0.0 would."""
    with socket.socket() as service, socket.socket() as router:
        service.bind(("0.0.0.0", 0))
        router.bind(("0.0.0.0", sandbox.network.router_port))
        for sock in (service, router):
            sock.listen()
        yield service.getsockname()[1], sandbox.network.router_port


def test_containers_reach_the_host_only_on_the_router_port(
    sandbox: Sandbox, host_ports: tuple[int, int]
) -> None:
    service, router = host_ports
    network = sandbox.network
    network.ensure_bridge()
    inside = network.attach("c1").netns_name
    assert _connect("127.0.0.1", service) == "connected"  # the host itself still can
    assert _connect(network.gateway, router, inside) == "connected"
    # Rejected at once (not a timeout): the app gets an error rather than a hang.
    assert _connect(network.gateway, service, inside) == "OSError"
    with IPRoute() as ipr:  # any host address, not only the bridge's
        others = [
            a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2)
            if a.get_attr("IFA_ADDRESS") not in ("127.0.0.1", str(network.gateway))
        ]  # fmt: skip
    for address in others[:2]:
        assert _connect(address, service, inside) == "OSError", address


def test_containers_cannot_reach_each_other_but_the_host_reaches_them(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    client = network.attach("client")
    server = network.attach("server")
    spec = sandbox.spec("server", HTTPD, netns_path=server.netns_path)
    sandbox.runtime.start(spec)
    deadline = time.monotonic() + 30
    while _connect(server.address, 5000) != "connected":  # the host reaches the replica
        assert time.monotonic() < deadline, "the container never answered the host"
        time.sleep(0.05)
    assert _connect(server.address, 5000, client.netns_name) != "connected"


def test_ensure_bridge_isolates_ports_plugged_before(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    network.attach("c1")
    veth = network.veth_name("c1")
    assert _isolated(veth) == 1
    with IPRoute() as ipr:
        ipr.brport("set", index=ipr.link_lookup(ifname=veth)[0], isolated=0)
    assert _isolated(veth) == 0
    network.ensure_bridge()
    assert _isolated(veth) == 1


def test_the_filter_is_the_platforms_own_table(sandbox: Sandbox) -> None:
    network = sandbox.network
    network.ensure_bridge()
    network.ensure_bridge()
    listed = subprocess.run(
        ["nft", "list", "table", "inet", network.bridge],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert f"tcp dport {network.router_port} accept" in listed.stdout
    assert listed.stdout.count("chain ") == 1
    network.destroy()
    assert network.bridge not in nft_tables()


def _isolated(ifname: str) -> int:
    with IPRoute() as ipr:
        (link,) = ipr.brport("show", index=ipr.link_lookup(ifname=ifname)[0])
        return int(link.get_nested("IFLA_PROTINFO", "IFLA_BRPORT_ISOLATED"))


def _mac(ifname: str) -> str:
    with IPRoute() as ipr:
        mac: str = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_ADDRESS")
        return mac


def test_the_bridge_keeps_its_mac_while_replicas_come_and_go(
    sandbox: Sandbox, host_ports: tuple[int, int]
) -> None:
    network = sandbox.network
    router = host_ports[1]
    network.ensure_bridge()
    mac = _mac(network.bridge)
    network.attach("leaving")
    with IPRoute() as ipr:  # the lowest MAC there is: an unpinned bridge would take it
        leaving = ipr.link_lookup(ifname=network.veth_name("leaving"))[0]
        ipr.link("set", index=leaving, address="00:00:00:00:00:01")
    staying = network.attach("staying").netns_name
    assert _connect(network.gateway, router, staying) == "connected"  # learns the gateway
    network.detach("leaving")
    assert _mac(network.bridge) == mac
    # An app calling another through the router right after: its gateway entry is still
    # right (with a changed MAC its SYNs would be lost until that entry expired, ~8 s).
    assert _connect(network.gateway, router, staying, timeout=2) == "connected"
