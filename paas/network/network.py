"""``Network``: the bridge, and one netns + veth pair + address per container (pyroute2).

Containers are isolated from each other and from the host: every host veth is an isolated
bridge port (``IFLA_BRPORT_ISOLATED``: the bridge forwards nothing between two isolated
ports, so a container reaches no other container, only the host), and the platform's
nftables table (``paas.network.firewall``) lets traffic from the bridge into the host only
on the router's port or as part of a connection the host opened.

Names are derived, never stored: the netns of container ``cid`` is
``{instance}-{sha256(cid)[:10]}``; its host-side veth is ``v`` + 12 hex chars (IFNAMSIZ is 15)
and carries the alias ``paas {instance} {cid}``, set last, which marks it as ours and complete.
Leases (``paas.network.leases``) are the record of which containers are attached.

pyroute2 traps handled here: ``IPRoute(netns=...)`` silently creates a missing netns unless
``flags=0``; the kernel destroys a removed netns asynchronously, so the host veth is deleted
first (synchronously), then the netns. A bridge whose MAC was never set takes the lowest MAC
of its ports, so it would change as replicas come and go and leave every other container
sending to a gateway MAC that no longer exists (seconds without answers, until its ARP entry
expires): the bridge is made with a MAC of its own, which the kernel then keeps.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyroute2 import IPRoute, NetlinkError, netns
from pyroute2 import config as pyroute2_config

from paas.errors import InvalidInput, PlatformError
from paas.network.firewall import apply_rules, remove_rules
from paas.network.leases import Leases, gateway_of

# pyroute2 forks short-lived children for netns work and ends them with SIGTERM. Unless told
# otherwise, a child keeps the handlers of the process it was forked from; in a Celery pool
# worker that handler reports the *worker* lost, and the pool then kills the worker mid-task.
pyroute2_config.disable_mp_signal = True

NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15


@dataclass(frozen=True)
class Attachment:
    netns_name: str
    netns_path: Path
    address: IPv4Address
    gateway: IPv4Address


@dataclass(frozen=True)
class Orphans:
    """Network namespaces and host veths of this instance that no lease owns."""

    netns: tuple[str, ...] = ()
    veths: tuple[str, ...] = ()


class Network:
    def __init__(
        self, bridge: str, subnet: IPv4Network, instance: str, leases_dir: Path, router_port: int
    ) -> None:
        """``router_port``: the one host port containers may connect to (the router's)."""
        if not 0 < len(bridge) <= IFNAMSIZ:
            raise InvalidInput(f"Bridge name {bridge!r} must have 1 to {IFNAMSIZ} characters.")
        if subnet.num_addresses < 4:
            raise InvalidInput(f"Subnet {subnet} is too small for a bridge and a container.")
        self.bridge = bridge
        self.subnet = subnet
        self.instance = instance
        self.leases = Leases(leases_dir, subnet)
        self.router_port = router_port

    @property
    def gateway(self) -> IPv4Address:
        return gateway_of(self.subnet)

    def netns_name(self, container_id: str) -> str:
        return f"{self.instance}-{_sha(container_id)[:10]}"

    def veth_name(self, container_id: str) -> str:
        return "v" + _sha(f"{self.instance} {container_id}")[:12]

    def _alias(self, container_id: str) -> str:
        return f"paas {self.instance} {container_id}"

    # --- bridge -------------------------------------------------------------------------------

    def ensure_bridge(self) -> None:
        """Create the bridge with the gateway address, isolate its ports, filter what
        reaches the host from it, and bring it up; idempotent."""
        apply_rules(self.bridge, self.router_port)  # by name: in force before the bridge exists
        with _netlink(f"setting up bridge {self.bridge}") as ipr:
            if not ipr.link_lookup(ifname=self.bridge):
                mac = _bridge_mac(self.bridge)  # set, so the kernel never changes it
                _tolerate_exists(
                    lambda: ipr.link("add", ifname=self.bridge, kind="bridge", address=mac)
                )
            index = ipr.link_lookup(ifname=self.bridge)[0]
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
            if str(self.gateway) not in have:
                gateway, prefixlen = str(self.gateway), self.subnet.prefixlen
                _tolerate_exists(
                    lambda: ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
                )
            for port in ipr.get_links():  # ports plugged before isolation existed
                if port.get_attr("IFLA_MASTER") == index:
                    ipr.brport("set", index=port["index"], isolated=1)
            ipr.link("set", index=index, state="up")

    # --- containers ---------------------------------------------------------------------------

    def attach(self, container_id: str) -> Attachment:
        """Give the container a netns with ``eth0`` on the bridge; idempotent."""
        with _netlink(f"attaching {container_id}") as ipr:
            bridge = ipr.link_lookup(ifname=self.bridge)
            if not bridge:
                raise PlatformError(f"Bridge {self.bridge} is missing: set the network up first.")
            address = self.leases.acquire(container_id)
            attachment = self._attachment(container_id, address)
            if self._complete(ipr, container_id):
                return attachment
        veth, name = self.veth_name(container_id), attachment.netns_name
        self._unplug(container_id)  # whatever a crash left half-made
        try:
            with _netlink(f"attaching {container_id}") as ipr:
                netns.create(name)
                # The peer is made right inside the netns, so "eth0" never clashes on the host.
                ipr.link(
                    "add", ifname=veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": name}
                )
                index = ipr.link_lookup(ifname=veth)[0]
                ipr.link("set", index=index, master=bridge[0])
                ipr.brport("set", index=index, isolated=1)  # before it is up
                ipr.link("set", index=index, state="up")
                with IPRoute(netns=name, flags=0) as inside:
                    inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
                    eth0 = inside.link_lookup(ifname="eth0")[0]
                    inside.addr(
                        "add", index=eth0, address=str(address), prefixlen=self.subnet.prefixlen
                    )
                    inside.link("set", index=eth0, state="up")
                    inside.route("add", dst="0.0.0.0/0", gateway=str(self.gateway))
                _forget_neighbour(ipr, bridge[0], address)
                ipr.link("set", index=index, ifalias=self._alias(container_id))  # complete
        except BaseException:
            self.detach(container_id)
            raise
        return attachment

    def detach(self, container_id: str) -> None:
        """Remove the container's veth, netns and lease; idempotent."""
        self._unplug(container_id)
        self.leases.release(container_id)

    def attached(self) -> dict[str, Attachment]:
        return {cid: self._attachment(cid, a) for cid, a in self.leases.all().items()}

    # --- cleanup ------------------------------------------------------------------------------

    def orphans(self) -> Orphans:
        leased = set(self.leases.all())
        owned = {self.netns_name(cid) for cid in leased}
        prefix = f"{self.instance}-"
        spaces = [n for n in netns.listnetns() if n.startswith(prefix) and n not in owned]
        veths = [name for name, cid in self._our_veths().items() if cid not in leased]
        return Orphans(netns=tuple(sorted(spaces)), veths=tuple(sorted(veths)))

    def remove_orphans(self) -> Orphans:
        """Remove what ``orphans()`` finds (veths first); return what was removed."""
        found = self.orphans()
        with _netlink("removing orphan veths") as ipr:
            for veth in found.veths:
                _delete_link(ipr, veth)
        for name in found.netns:
            _remove_netns(name)
        return found

    def destroy(self) -> None:
        """Remove every attachment, orphan and lease of this instance, the bridge and its
        filter."""
        for container_id in self.attached():
            self.detach(container_id)
        self.remove_orphans()
        with _netlink(f"removing bridge {self.bridge}") as ipr:
            _delete_link(ipr, self.bridge)
        remove_rules(self.bridge)
        if self.leases.directory.is_dir() and not any(self.leases.directory.iterdir()):
            self.leases.directory.rmdir()

    # --- internals ----------------------------------------------------------------------------

    def _attachment(self, container_id: str, address: IPv4Address) -> Attachment:
        name = self.netns_name(container_id)
        return Attachment(name, NETNS_DIR / name, address, self.gateway)

    def _complete(self, ipr: IPRoute, container_id: str) -> bool:
        if not (NETNS_DIR / self.netns_name(container_id)).exists():
            return False
        links = ipr.link_lookup(ifname=self.veth_name(container_id))
        if not links:
            return False
        alias: str | None = ipr.get_links(links[0])[0].get_attr("IFLA_IFALIAS")
        return alias == self._alias(container_id)

    def _unplug(self, container_id: str) -> None:
        with _netlink(f"detaching {container_id}") as ipr:
            _delete_link(ipr, self.veth_name(container_id))
        _remove_netns(self.netns_name(container_id))

    def _our_veths(self) -> dict[str, str]:
        """Host veth name -> container id, for the veths marked as this instance's."""
        prefix = f"paas {self.instance} "
        found = {}
        with _netlink("listing links") as ipr:
            for link in ipr.get_links():
                alias = link.get_attr("IFLA_IFALIAS") or ""
                if alias.startswith(prefix):
                    found[link.get_attr("IFLA_IFNAME")] = alias[len(prefix) :]
        return found


def _forget_neighbour(ipr: IPRoute, bridge: int, address: IPv4Address) -> None:
    """Drop the host's ARP entry for ``address``: a replica that had the address before
    may have left it "reachable" with its old MAC, which would blackhole the new replica
    for up to a minute."""
    try:
        ipr.neigh("del", dst=str(address), ifindex=bridge)
    except NetlinkError as exc:
        if exc.code != errno.ENOENT:
            raise


def _bridge_mac(bridge: str) -> str:
    """A locally administered unicast MAC of the bridge's own, the same at every boot."""
    octets = bytes.fromhex(_sha(bridge)[:10])
    return ":".join(f"{b:02x}" for b in (0x02, *octets))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _netlink(doing: str) -> Iterator[IPRoute]:
    """An ``IPRoute`` on the host netns; netlink and OS errors become ``PlatformError``."""
    try:
        with IPRoute() as ipr:
            yield ipr
    except (NetlinkError, OSError) as exc:
        raise PlatformError(f"Network error while {doing}: {exc}") from None


def _tolerate_exists(action: Callable[[], object]) -> None:
    try:
        action()
    except NetlinkError as exc:
        if exc.code != 17:  # EEXIST: another process did it first
            raise


def _delete_link(ipr: IPRoute, name: str) -> None:
    for index in ipr.link_lookup(ifname=name):
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != 19:  # ENODEV: gone meanwhile
                raise


def _remove_netns(name: str) -> None:
    if name in netns.listnetns():
        try:
            netns.remove(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PlatformError(f"Could not remove network namespace {name}: {exc}") from None
