"""Address leases: one file per leased address (named by the address, holding the container
id) in a leases dir, so that concurrent processes never hand out the same address.

A lease appears atomically with its content: it is written to a private temp file and then
``os.link``-ed to its name, which fails with ``EEXIST`` exactly like ``O_CREAT | O_EXCL`` would,
but a reader never sees an empty lease. No netlink here: this is plain, testable file logic.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from paas.errors import PlatformError


def gateway_of(subnet: IPv4Network) -> IPv4Address:
    """The bridge's address: the first host address of the subnet."""
    return next(iter(subnet.hosts()))


def free_addresses(subnet: IPv4Network, taken: Iterable[IPv4Address]) -> Iterator[IPv4Address]:
    """Addresses a container may get, lowest first: every host address but the gateway's."""
    skip = {gateway_of(subnet), *taken}
    return (a for a in subnet.hosts() if a not in skip)


class Leases:
    def __init__(self, directory: Path, subnet: IPv4Network) -> None:
        self.directory = directory
        self.subnet = subnet

    def all(self) -> dict[str, IPv4Address]:
        """Container id -> leased address (its lowest one, should it hold several)."""
        found: dict[str, IPv4Address] = {}
        for owner, address in self._owners():
            found.setdefault(owner, address)
        return found

    def get(self, container_id: str) -> IPv4Address | None:
        return self.all().get(container_id)

    def acquire(self, container_id: str) -> IPv4Address:
        """The container's address: its existing lease, else the lowest free address."""
        if (existing := self.get(container_id)) is not None:
            return existing
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            os.write(fd, container_id.encode())
            os.close(fd)
            for address in free_addresses(self.subnet, self._taken()):
                try:
                    os.link(tmp, self.directory / str(address))
                except FileExistsError:  # another process got it first: try the next one
                    continue
                return address
        finally:
            os.unlink(tmp)
        raise PlatformError(f"No free address left in {self.subnet}: use a larger PAAS_SUBNET.")

    def age(self, container_id: str) -> float | None:
        """Seconds since the container's lease was taken (None: it has none)."""
        address = self.get(container_id)
        if address is None:
            return None
        try:
            return time.time() - (self.directory / str(address)).stat().st_mtime
        except FileNotFoundError:
            return None

    def release(self, container_id: str) -> None:
        for owner, address in self._owners():
            if owner == container_id:
                (self.directory / str(address)).unlink(missing_ok=True)

    def _owners(self) -> Iterator[tuple[str, IPv4Address]]:
        for address in self._taken():
            try:
                owner = (self.directory / str(address)).read_text(encoding="utf-8").strip()
            except FileNotFoundError:  # released meanwhile
                continue
            yield owner, address

    def _taken(self) -> list[IPv4Address]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        taken = []
        for name in names:
            try:
                address = IPv4Address(name)
            except ValueError:  # temp files
                continue
            if address in self.subnet:
                taken.append(address)
        return sorted(taken)
