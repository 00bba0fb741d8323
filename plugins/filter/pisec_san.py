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

# RFC 1123 labels; a leading "*." is allowed for wildcard names. Used with
# fullmatch: a trailing newline is not a name.
_DNS_NAME = re.compile(
    r"(\*\.)?(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
# A certificate CN pisec issues: an identity (also a safe MQTT user name and
# file name) or, for a broker known by its address, an IP address.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


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
        if kind == "DNS" and _DNS_NAME.fullmatch(value):
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
    reserved: Iterable[Any] = (),
) -> list[str]:
    """Build the SAN list: names (an IP-shaped name becomes an IP entry),
    then usable addresses, then the checked extra entries, without repeats.

    `names` and `addresses` are what a host reports about itself (its
    facts), except the first name, its inventory name. A reported entry that
    `reserved` holds (what the inventory calls the other hosts: names,
    addresses, or `DNS:`/`IP:` entries) is left out, and so is a reported
    wildcard: a host that lies about itself gets no other host's name."""
    taken = {entry for entry in (_reserved(item) for item in reserved if item) if entry}
    entries: list[str] = []
    for position, name in enumerate(names):
        if not name:
            continue
        entry = _entry(str(name))
        if entry is None:
            continue
        if position == 0 or (entry not in taken and not entry.startswith("DNS:*")):
            entries.append(entry)
    for raw in addresses:
        try:
            address = ipaddress.ip_address(str(raw).split("%", 1)[0])
        except ValueError:
            continue
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            continue
        if f"IP:{address.compressed}" not in taken:
            entries.append(f"IP:{address.compressed}")
    entries.extend(check_sans(extra, variable))
    return list(dict.fromkeys(entries))


def _reserved(item: Any) -> str | None:
    text = str(item)
    if text.startswith(("DNS:", "IP:")):
        try:
            return check_sans([text])[0]
        except AnsibleFilterError:
            return None
    return _entry(text)


def _entry(text: str) -> str | None:
    ip_entry = _ip_entry(text)
    if ip_entry is not None:
        return ip_entry
    if _DNS_NAME.fullmatch(text):
        return f"DNS:{text.rstrip('.').lower()}"
    return None


def check_common_name(value: Any, variable: str) -> str:
    """A certificate CN pisec issues: an identity or an IP address."""
    if (
        isinstance(value, str)
        and "%" not in value
        and (_IDENTITY.fullmatch(value) or _ip_entry(value))
    ):
        return value
    raise AnsibleFilterError(
        f"{variable}: {value!r} is not a valid certificate common name (1 to 64 letters, digits "
        "and _.@-, starting with a letter or digit, or an IP address)"
    )


class FilterModule:
    """pisec filters for subject alternative names."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_check_sans": check_sans,
            "pisec_san_list": san_list,
            "pisec_check_common_name": check_common_name,
        }
