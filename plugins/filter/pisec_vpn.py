"""The WireGuard address plan, checked before anything changes.

The plan maps inventory hostnames to their tunnel address (from
`pisec_wireguard_address`); hosts without one are not in the VPN.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def vpn_plan(addresses: Mapping[str, Any], hub: str, prefix: Any) -> dict[str, str]:
    """The hosts in the VPN and their addresses, or an error naming the entry.

    Every address is an IPv4 address inside the hub's network, and unique;
    the hub has one whenever any host has.
    """
    try:
        length = int(prefix)
        if not 8 <= length <= 30:
            raise ValueError
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"pisec_wireguard_prefix: {prefix!r} is not 8..30") from None
    plan: dict[str, str] = {}
    for host, raw in addresses.items():
        text = str(raw or "").strip()
        if not text:
            continue
        try:
            plan[host] = str(ipaddress.IPv4Address(text))
        except ValueError:
            raise AnsibleFilterError(
                f"pisec_wireguard_address of {host}: {text!r} is not an IPv4 address"
            ) from None
    if not plan:
        return plan
    if hub not in plan:
        raise AnsibleFilterError(
            f"pisec_wireguard_address: the hub {hub!r} (pisec_wireguard_hub) has no address, "
            f"but {', '.join(sorted(plan))} do"
        )
    network = ipaddress.IPv4Network(f"{plan[hub]}/{length}", strict=False)
    seen: dict[str, str] = {}
    for host, address in plan.items():
        if ipaddress.IPv4Address(address) not in network:
            raise AnsibleFilterError(
                f"pisec_wireguard_address of {host}: {address} is outside "
                f"the hub's network {network}"
            )
        if address in (str(network.network_address), str(network.broadcast_address)):
            raise AnsibleFilterError(
                f"pisec_wireguard_address of {host}: {address} is the network's "
                f"{'network' if address == str(network.network_address) else 'broadcast'} address"
            )
        if address in seen:
            raise AnsibleFilterError(
                f"pisec_wireguard_address: {host} and {seen[address]} both have {address}"
            )
        seen[address] = host
    return plan


def vpn_network(address: str, prefix: Any) -> str:
    """The network of an address, e.g. 10.87.0.0/24 for 10.87.0.1 and 24."""
    return str(ipaddress.IPv4Network(f"{address}/{int(prefix)}", strict=False))


class FilterModule:
    """pisec filters for the WireGuard address plan."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"pisec_vpn_plan": vpn_plan, "pisec_vpn_network": vpn_network}
