"""The WireGuard address plan: what the preflight accepts and refuses."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.pisec_vpn import vpn_network, vpn_plan


def test_plan_keeps_hosts_with_an_address() -> None:
    plan = vpn_plan({"hub": "10.87.0.1", "a": "10.87.0.11", "b": "", "c": None}, "hub", 24)
    assert plan == {"hub": "10.87.0.1", "a": "10.87.0.11"}
    assert vpn_plan({"hub": "", "a": ""}, "hub", "24") == {}
    assert vpn_network("10.87.0.1", "24") == "10.87.0.0/24"


@pytest.mark.parametrize(
    ("addresses", "prefix", "message"),
    [
        (
            {"hub": "10.87.0.1", "a": "10.87.0.300"},
            24,
            "of a: '10.87.0.300' is not an IPv4 address",
        ),
        ({"hub": "", "a": "10.87.0.11"}, 24, "the hub 'hub' (pisec_wireguard_hub) has no address"),
        (
            {"hub": "10.87.0.1", "a": "10.88.0.11"},
            24,
            "of a: 10.88.0.11 is outside the hub's network",
        ),
        ({"hub": "10.87.0.1", "a": "10.87.0.1"}, 24, "a and hub both have 10.87.0.1"),
        ({"hub": "10.87.0.1", "a": "10.87.0.255"}, 24, "is the network's broadcast address"),
        ({"hub": "10.87.0.1"}, 31, "pisec_wireguard_prefix: 31 is not 8..30"),
    ],
)
def test_plan_errors_name_the_entry(addresses: dict[str, str], prefix: int, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        vpn_plan(addresses, "hub", prefix)
