"""The nftables script of the platform's table (applied against the kernel in
tests/integration/test_network.py)."""

from __future__ import annotations

import pytest

from paas.errors import InvalidInput
from paas.network.firewall import rules


def test_rules_replace_the_table_and_filter_only_the_bridge() -> None:
    script = rules("paas-0a1b2c", 8080)
    assert script.startswith("table inet paas-0a1b2c\ndelete table inet paas-0a1b2c\n")
    body = [line.strip() for line in script.splitlines() if line.startswith("    ")]
    assert body == [
        "type filter hook input priority filter; policy accept;",
        'iifname "paas-0a1b2c" ct state established,related accept',
        'iifname "paas-0a1b2c" tcp dport 8080 accept',
        'iifname "paas-0a1b2c" reject with icmpx type admin-prohibited',
    ]


@pytest.mark.parametrize("bridge", ['br"; flush ruleset', "", "9bridge", "a" * 16, "br 0"])
def test_names_nft_would_not_read_as_one_word_are_refused(bridge: str) -> None:
    with pytest.raises(InvalidInput, match="Bridge name"):
        rules(bridge, 80)


@pytest.mark.parametrize("port", [0, 65536])
def test_the_router_port_must_be_a_port(port: int) -> None:
    with pytest.raises(InvalidInput, match="not a TCP port"):
        rules("paas-0a1b2c", port)
