"""Filters for the CoAPs gateway's keys (role pisec_coaps).

A device's key is kept on the control node as 32 random hex digits (128
bits, ansible.builtin.password with the 16 hex characters). Its format
says which bytes the key is: `text`, those 32 characters (what libcoap's
and GnuTLS's clients read), or `raw`, the 16 bytes they stand for (what a
tinydtls device takes). No message here ever holds a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

_KEY = re.compile(r"[0-9a-f]{32}")
# An identity, as pisec_check_identities allows it: it names files and is a
# field of coap-client's comma-separated hint file.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
HINT = "pisec"


def _name(name: Any) -> str:
    if not isinstance(name, str) or not _IDENTITY.fullmatch(name):
        raise AnsibleFilterError(f"{name!r} is not a valid identity for a CoAPs device")
    return name


def _checked(key: Any, name: str) -> str:
    _name(name)
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise AnsibleFilterError(
            f"{name}: its stored key is not 32 lowercase hex digits "
            f"(pisec_coaps_keys_dir/{name}.psk on the control node)"
        )
    return key


def psk_hex(key: Any, psk_format: str, name: str) -> str:
    """The key's bytes in hex, as the gateway's key file holds them."""
    checked = _checked(key, name)
    if psk_format == "text":
        return checked.encode("ascii").hex()
    if psk_format == "raw":
        return checked
    raise AnsibleFilterError(f"{name}: psk_format must be text or raw (is {psk_format!r})")


def key_file(key: Any, kind: str, name: str) -> str:
    """What a device's file says. `psk`: the key as kept (for a text key,
    its bytes exactly; for a raw key, the hex of its 16 bytes). `coap-client`:
    the line of coap-client's -h file (hint, identity, key), which keeps a
    text key off the command line."""
    checked = _checked(key, name)
    if kind == "psk":
        return checked
    if kind == "coap-client":
        return f"{HINT},{name},{checked}\n"
    raise AnsibleFilterError(f"{name}: no key file of kind {kind!r}")


def key_files(devices: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The files each device gets: its key, and the coap-client hint file
    where its key is text (coap-client cannot read a raw key from a file)."""
    files: list[dict[str, str]] = []
    for device in devices:
        _name(device["name"])
        files.append({"name": device["name"], "kind": "psk"})
        if device.get("psk_format", "text") == "text":
            files.append({"name": device["name"], "kind": "coap-client"})
    return files


class FilterModule:
    """pisec filters for pre-shared keys."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_psk_hex": psk_hex,
            "pisec_coaps_file": key_file,
            "pisec_coaps_files": key_files,
        }
