"""Checks for MQTT identities and ACL rules, run before anything changes.

Mosquitto refuses to start on an ACL line it cannot parse, and silently
never matches a topic filter that breaks MQTT's wildcard rules; both are
caught here with the entry named.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# A certificate CN that is also a safe MQTT user name and file name; used
# with fullmatch (a `$` would let a trailing newline through).
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
ACCESS = ("read", "write", "readwrite", "deny")
MAX_TOPIC_BYTES = 65535


def topic_filter_problem(topic: str) -> str | None:
    """Why mosquitto would reject or never match this topic filter, or None."""
    if not topic:
        return "is empty"
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    if "\x00" in topic or "\n" in topic or "\r" in topic:
        return "contains a NUL or line break"
    if topic != topic.strip():
        return "starts or ends with white space (the ACL file would cut it)"
    levels = topic.split("/")
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            return "uses '#' other than as the whole last level"
        if "+" in level and level != "+":
            return "uses '+' other than as a whole level"
    for token in re.findall(r"%.", topic):
        if token not in ("%c", "%u"):
            return f"uses {token!r}; patterns know only %c (client id) and %u (user name)"
    return None


def check_identities(entries: Iterable[Any], variable: str) -> list[str]:
    """Names of users or devices, each a valid CN, none twice."""
    names: list[str] = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not _IDENTITY.fullmatch(name):
            raise AnsibleFilterError(
                f"{variable}: {name!r} is not a valid identity (1 to 64 letters, digits and "
                "_.@-, starting with a letter or digit; it becomes the certificate CN and the "
                "MQTT user name)"
            )
        if name in names:
            raise AnsibleFilterError(f"{variable}: {name!r} is declared twice")
        names.append(name)
    return names


def check_unique_across(groups: Mapping[str, Iterable[str]]) -> bool:
    """No identity is both a device and a user (one MQTT name, one ACL)."""
    seen: dict[str, str] = {}
    for variable, names in groups.items():
        for name in names:
            if name in seen:
                raise AnsibleFilterError(
                    f"{name!r} is declared in both {seen[name]} and {variable}: an identity is "
                    "either a certificate device or a password user"
                )
            seen[name] = variable
    return True


def check_acl(
    rules: Iterable[Any], variable: str, *, patterns: bool = False
) -> list[dict[str, str]]:
    """ACL rules `{topic, access}`, normalised; fail naming the bad rule."""
    checked: list[dict[str, str]] = []
    for number, rule in enumerate(rules, start=1):
        where = f"{variable}[{number}]"
        if not isinstance(rule, Mapping) or "topic" not in rule:
            raise AnsibleFilterError(f"{where}: {rule!r} needs a topic and an access")
        topic = rule["topic"]
        access = rule.get("access", "readwrite")
        if not isinstance(topic, str):
            raise AnsibleFilterError(f"{where}: topic {topic!r} is not a string")
        if access not in ACCESS:
            raise AnsibleFilterError(
                f"{where}: access {access!r} is not one of {', '.join(ACCESS)}"
            )
        problem = topic_filter_problem(topic)
        if problem:
            raise AnsibleFilterError(f"{where}: topic {topic!r} {problem}")
        if not patterns and re.search(r"%[cu]", topic):
            raise AnsibleFilterError(
                f"{where}: topic {topic!r} uses %c/%u, which only pattern rules substitute "
                "(put it in pisec_mosquitto_acl_patterns)"
            )
        checked.append({"topic": topic, "access": access})
    return checked


def check_entry_acls(entries: Iterable[Any], variable: str) -> list[dict[str, Any]]:
    """Users' (or devices') ACL rules as `{name, acl}`; a bad rule is named
    `variable[<name>].acl[N]`, so the error says whose rule it is."""
    checked: list[dict[str, Any]] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"{variable}[{number}]: {entry!r} is not a mapping")
        name = entry.get("name")
        label = name if isinstance(name, str) else str(number)
        acl = check_acl(entry.get("acl") or [], f"{variable}[{label}].acl")
        checked.append({"name": name, "acl": acl})
    return checked


def short_passwords(entries: Iterable[Any], min_length: int | str, variable: str) -> list[str]:
    """`variable[<name>]` of each entry whose given password is shorter than
    `min_length`. Only names are returned: a password must never reach a message."""
    short: list[str] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or "password" not in entry:
            continue
        password = entry["password"]
        if len("" if password is None else str(password)) < int(min_length):
            name = entry.get("name")
            short.append(f"{variable}[{name if isinstance(name, str) else number}]")
    return short


DEVICE_KEYS = ("name", "managed", "acl", "coaps", "psk_format")
# A device's pre-shared key is 32 random hex digits (128 bits). `text`: the
# key is those 32 characters, as libcoap's and GnuTLS's clients read a key
# (coap-client -k, its -h hint file). `raw`: the 16 bytes they stand for,
# for a tinydtls device (a class-1 microcontroller), which takes at most 16.
PSK_FORMATS = ("text", "raw")


def resolve_devices(
    devices: Iterable[Any], managed_hosts: Iterable[str], variable: str = "pisec_fleet_devices"
) -> list[dict[str, Any]]:
    """Devices as `{name, managed, acl, coaps, psk_format}`: names checked,
    rules checked, `managed` defaulting to whether the device is a client Pi
    of the inventory, `coaps` (it speaks CoAP over DTLS with a pre-shared
    key) to false and `psk_format` to `text`. `variable` names the list in
    messages."""
    devices = list(devices)
    hosts = set(managed_hosts)
    check_identities(devices, variable)
    resolved: list[dict[str, Any]] = []
    for device in devices:
        name = device["name"]
        unknown = sorted(str(key) for key in device if key not in DEVICE_KEYS)
        if unknown:
            raise AnsibleFilterError(
                f"{variable}[{name}]: {', '.join(unknown)} is not one of {', '.join(DEVICE_KEYS)}"
            )
        managed = device.get("managed")
        if managed is None:
            managed = name in hosts
        elif not isinstance(managed, bool):
            raise AnsibleFilterError(f"{variable}[{name}].managed must be true or false")
        elif managed and name not in hosts:
            raise AnsibleFilterError(
                f"{variable}: {name!r} is managed: true but not a host of pisec_clients"
            )
        coaps = device.get("coaps", False)
        if not isinstance(coaps, bool):
            raise AnsibleFilterError(f"{variable}[{name}].coaps must be true or false")
        psk_format = device.get("psk_format", "text")
        if psk_format not in PSK_FORMATS:
            raise AnsibleFilterError(
                f"{variable}[{name}].psk_format must be {' or '.join(PSK_FORMATS)} "
                f"(is {psk_format!r})"
            )
        if "psk_format" in device and not coaps:
            raise AnsibleFilterError(f"{variable}[{name}].psk_format is for coaps: true devices")
        acl = check_acl(device.get("acl") or [], f"{variable}[{name}].acl")
        resolved.append(
            {
                "name": name,
                "managed": managed,
                "acl": acl,
                "coaps": coaps,
                "psk_format": psk_format,
            }
        )
    return resolved


def acl_entries(
    users: Iterable[Any],
    devices: Iterable[Any],
    patterns: Iterable[Any],
    revoked: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """What the broker's ACL file says, identity by identity: each user's and
    device's own rules, then the fleet's pattern rules written out for it.

    A client id is its identity's name (use_username_as_clientid), so `%u`
    and `%c` both stand for the name. Writing the patterns out instead of
    giving mosquitto `pattern` lines means an identity that has no block
    here, one revoked or no longer in the inventory, has no right at all,
    also on a connection it already holds (mosquitto re-reads the file on
    SIGHUP and checks every PUBLISH and every delivery against it)."""
    taken = set(revoked)
    checked_patterns = check_acl(patterns, "pisec_mosquitto_acl_patterns", patterns=True)
    entries: list[dict[str, Any]] = []
    for kind, variable, items in (
        ("password user", "pisec_mosquitto_users", users),
        ("certificate device", "pisec_mosquitto_devices", devices),
    ):
        listed = list(items)
        check_identities(listed, variable)
        for item in listed:
            name = item["name"]
            if name in taken:
                continue
            rules = check_acl(item.get("acl") or [], f"{variable}[{name}].acl") + [
                {
                    "topic": rule["topic"].replace("%u", name).replace("%c", name),
                    "access": rule["access"],
                }
                for rule in checked_patterns
            ]
            unique = list({(rule["topic"], rule["access"]): rule for rule in rules}.values())
            entries.append({"name": name, "kind": kind, "rules": unique})
    return entries


def named(name: str) -> dict[str, str]:
    """`{'name': name}`: an identity as an entry of a list of users."""
    return {"name": name}


class FilterModule:
    """pisec filters for MQTT identities and ACLs."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_check_identities": check_identities,
            "pisec_named": named,
            "pisec_check_unique_across": check_unique_across,
            "pisec_check_acl": check_acl,
            "pisec_check_entry_acls": check_entry_acls,
            "pisec_short_passwords": short_passwords,
            "pisec_resolve_devices": resolve_devices,
            "pisec_acl_entries": acl_entries,
        }
