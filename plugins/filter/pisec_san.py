"""Subject alternative names for a host certificate.

Addresses and names come from facts and the inventory in mixed shapes; these
filters turn them into the `DNS:`/`IP:` entries community.crypto expects and
reject an entry the CA would otherwise sign blindly.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from ansible.errors import AnsibleFilterError

# RFC 1123 labels; a leading "*." is allowed for wildcard names.
_DNS_NAME = re.compile(
    r"^(\*\.)?(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def _ip_entry(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return f"IP:{address.compressed}"


def check_sans(entries: Iterable[Any], variable: str = "subject alternative names") -> list[str]:
    """Return the entries normalised, or fail naming the variable and the first bad entry."""
    checked: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or ":" not in entry:
            raise AnsibleFilterError(
                f"{variable}: {entry!r} is not of the form 'DNS:name' or 'IP:address'"
            )
        kind, value = entry.split(":", 1)
        if kind == "DNS" and _DNS_NAME.match(value):
            checked.append(f"DNS:{value.rstrip('.').lower()}")
        elif kind == "IP" and (ip_entry := _ip_entry(value)) is not None:
            checked.append(ip_entry)
        else:
            raise AnsibleFilterError(
                f"{variable}: {entry!r} is not a valid 'DNS:name' or 'IP:address' entry"
            )
    return checked


def san_list(
    names: Iterable[Any],
    addresses: Iterable[Any],
    extra: Iterable[Any] = (),
    variable: str = "subject alternative names",
) -> list[str]:
    """Build the SAN list: names (an IP-shaped name becomes an IP entry),
    then usable addresses, then the checked extra entries, without repeats."""
    entries: list[str] = []
    for name in names:
        if not name:
            continue
        text = str(name)
        ip_entry = _ip_entry(text)
        if ip_entry is not None:
            entries.append(ip_entry)
        elif _DNS_NAME.match(text):
            entries.append(f"DNS:{text.rstrip('.').lower()}")
    for raw in addresses:
        try:
            address = ipaddress.ip_address(str(raw).split("%", 1)[0])
        except ValueError:
            continue
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            continue
        entries.append(f"IP:{address.compressed}")
    entries.extend(check_sans(extra, variable))
    return list(dict.fromkeys(entries))


class FilterModule:
    """pisec filters for subject alternative names."""

    def filters(self) -> dict[str, Callable[..., list[str]]]:
        return {
            "pisec_check_sans": check_sans,
            "pisec_san_list": san_list,
        }
