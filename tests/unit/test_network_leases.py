"""Address allocation: lowest free address, reuse, release, and no double lease under
concurrent processes (plain files, no root needed)."""

from __future__ import annotations

import multiprocessing
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from paas.errors import PlatformError
from paas.network.leases import Leases, free_addresses, gateway_of

SUBNET = IPv4Network("198.19.77.0/24")


def test_gateway_is_the_first_host_and_never_leased() -> None:
    assert gateway_of(SUBNET) == IPv4Address("198.19.77.1")
    free = list(free_addresses(SUBNET, []))
    assert free[0] == IPv4Address("198.19.77.2") and free[-1] == IPv4Address("198.19.77.254")
    assert len(free) == 253
    taken = [IPv4Address("198.19.77.2"), IPv4Address("198.19.77.4")]
    assert next(free_addresses(SUBNET, taken)) == IPv4Address("198.19.77.3")


def test_acquire_reuse_release(tmp_path: Path) -> None:
    leases = Leases(tmp_path / "leases", SUBNET)
    assert leases.acquire("a") == IPv4Address("198.19.77.2")
    assert leases.acquire("b") == IPv4Address("198.19.77.3")
    assert leases.acquire("a") == IPv4Address("198.19.77.2")  # idempotent
    leases.release("a")
    leases.release("a")
    assert leases.get("a") is None
    assert leases.acquire("c") == IPv4Address("198.19.77.2")  # lowest free first
    assert leases.all() == {"b": IPv4Address("198.19.77.3"), "c": IPv4Address("198.19.77.2")}
    assert sorted(p.name for p in (tmp_path / "leases").iterdir()) == ["198.19.77.2", "198.19.77.3"]


def test_a_full_subnet_says_what_to_do(tmp_path: Path) -> None:
    leases = Leases(tmp_path, IPv4Network("198.19.77.0/30"))
    leases.acquire("a")
    with pytest.raises(PlatformError, match="PAAS_SUBNET"):
        leases.acquire("b")


def _grab(directory: str, worker: int) -> list[str]:
    leases = Leases(Path(directory), SUBNET)
    return [str(leases.acquire(f"w{worker}-{i}")) for i in range(10)]


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(6) as pool:
        results = pool.starmap(_grab, [(str(tmp_path), w) for w in range(6)])
    addresses = [a for result in results for a in result]
    assert len(addresses) == len(set(addresses)) == 60
    assert len(Leases(tmp_path, SUBNET).all()) == 60
