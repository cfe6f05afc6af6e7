"""The platform's own nftables table: what containers may reach on the host.

Containers sit on the bridge, whose address is the host's: without a filter a container
could connect to every host service bound to all addresses (sshd, the API, anything else).
Each platform instance has one ``inet`` table, named like its bridge, with an input hook:
a packet that arrives on the bridge passes only when it belongs to a connection the host
opened (the router's and the health checks' connections to replicas, their replies and
ICMP errors) or goes to the router's port; anything else is rejected (administratively
prohibited), so a connect fails at once rather than hanging. The host's other tables are
never touched.

Rules are written by the ``nft`` program (Debian's ``nftables``) from a script on its
standard input, which nft applies as one atomic transaction.
"""

from __future__ import annotations

import re
import subprocess

from paas.errors import InvalidInput, PlatformError

NFT_TIMEOUT = 30.0
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")  # an interface name nft reads as is


def _checked(bridge: str) -> str:
    if not _NAME.fullmatch(bridge):
        raise InvalidInput(
            f"Bridge name {bridge!r} must be 1 to 15 letters, digits, '-' or '_', "
            "starting with a letter."
        )
    return bridge


def _removal(bridge: str) -> str:
    """Declaring the table first makes its deletion succeed whether or not it existed."""
    return f"table inet {bridge}\ndelete table inet {bridge}\n"


def rules(bridge: str, router_port: int) -> str:
    """The nft script that (re)creates the table of ``bridge``, replacing any old one."""
    name = _checked(bridge)
    if not 0 < router_port < 65536:
        raise InvalidInput(f"Router port {router_port} is not a TCP port (1-65535).")
    on_bridge = f'iifname "{name}"'
    return _removal(name) + (
        f"table inet {name} {{\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        f"    {on_bridge} ct state established,related accept\n"
        f"    {on_bridge} tcp dport {router_port} accept\n"
        f"    {on_bridge} reject with icmpx type admin-prohibited\n"
        "  }\n"
        "}\n"
    )


def apply_rules(bridge: str, router_port: int) -> None:
    """Install (or replace) the table of ``bridge``; idempotent."""
    _run_nft(rules(bridge, router_port), f"filtering traffic from {bridge} to the host")


def remove_rules(bridge: str) -> None:
    """Remove the table of ``bridge``; a no-op when it does not exist."""
    _run_nft(_removal(_checked(bridge)), f"removing the filter of {bridge}")


def _run_nft(script: str, doing: str) -> None:
    try:
        done = subprocess.run(
            ["nft", "-f", "-"], input=script, capture_output=True, text=True,
            timeout=NFT_TIMEOUT, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise PlatformError(
            f"nft is missing while {doing}: install Debian's nftables (scripts/setup.sh)."
        ) from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"nft did not finish in {NFT_TIMEOUT:g} s while {doing}.") from None
    if done.returncode != 0:
        raise PlatformError(f"nft failed while {doing}: {done.stderr.strip()}")
