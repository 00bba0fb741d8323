"""Rules pisec applies in every place it runs, defined once.

This one file is the `pisec.rules` module of the package (the CLI), and,
through the symlink plugins/module_utils/pisec_rules.py, the
`ansible.module_utils.pisec_rules` of the modules that run on the CA host
and the filters on the controller: a serial looks the same and a
certificate is due at the same moment wherever pisec looks. Standard
library only, as Ansible ships it to hosts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

# Where the roles record what they installed on a host: one local fact per
# certificate (roles/pisec_host_cert), read back as ansible_local.<stem>.
CERT_FACT_DIR = "/etc/ansible/facts.d"
CERT_FACT_PREFIX = "pisec_cert_"
# A path pisec writes: absolute, of plain name characters, no `..`, no
# whitespace or shell characters. A host's fact is its claim; a reader
# uses a path only when the whole of it matches.
_PATH = re.compile(r"(?:/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,127}){1,16}")
_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CERT_FACT_PATHS = ("certificate", "key", "ca", "dir")


def serial_hex(serial: int) -> str:
    """A serial as `openssl x509 -serial` prints it: uppercase hex, whole
    bytes, no separators (a negative one, which no CA should issue, keeps
    its sign)."""
    digits = f"{abs(serial):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return ("-" if serial < 0 else "") + digits


def renewal_due(
    not_before: datetime, not_after: datetime, now: datetime, fraction_left: float
) -> bool:
    """Whether a certificate valid from `not_before` to `not_after` should be
    renewed at `now`: expired, not yet valid, or with less than
    `fraction_left` of its lifetime left."""
    if now < not_before or now >= not_after:
        return True
    lifetime = (not_after - not_before).total_seconds()
    return (not_after - now).total_seconds() < lifetime * fraction_left


def jitter_share(serial: str, now: datetime) -> float:
    """The share of the renewal jitter a certificate gets on the day of
    `now`, in [0, 1): drawn from its serial and the date, so a fleet's
    renewals spread over the jitter window while every check of one
    certificate on one day (every use in a run) agrees."""
    digest = hashlib.sha256(f"{serial}:{now.date().isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def renewal_due_with_jitter(
    not_before: datetime,
    not_after: datetime,
    now: datetime,
    fraction_left: float,
    jitter: float,
    serial: str,
) -> bool:
    """renewal_due with `fraction_left` raised by this certificate's share
    of `jitter` for the day (jitter_share): the rule every pisec
    certificate is renewed by, host or device."""
    share = float(jitter) * jitter_share(serial, now)
    return renewal_due(not_before, not_after, now, float(fraction_left) + share)


class CertFactError(ValueError):
    """A local fact that is not what pisec writes; the message names the field."""


def checked_path(value: Any, where: str) -> str:
    """`value` when it is an absolute path of plain names (full match, no
    `.` or `..` component); CertFactError naming `where` otherwise."""
    if (
        not isinstance(value, str)
        or not _PATH.fullmatch(value)
        or "/../" in value + "/"
        or "/./" in value + "/"
    ):
        raise CertFactError(f"{where} {value!r} is not an absolute path of plain names")
    return value


def cert_facts(local: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The certificates a host's local facts (ansible_local, or the files of
    CERT_FACT_DIR parsed as JSON, by stem) say pisec installed, checked:
    each is a mapping with a stem-like `name`, `purpose` server or client,
    and absolute plain `certificate`, `key`, `ca` and `dir` paths (full
    match). Sorted by fact name. Raises CertFactError naming the fact and
    field for anything else: a host's facts are what its root says."""
    found: list[dict[str, str]] = []
    for stem in sorted(local or {}):
        if not stem.startswith(CERT_FACT_PREFIX):
            continue
        fact = (local or {})[stem]
        where = f"ansible_local.{stem}"
        if not isinstance(fact, Mapping):
            raise CertFactError(f"{where} is not a mapping of paths")
        checked: dict[str, str] = {}
        for field in ("name", "purpose", *CERT_FACT_PATHS):
            value = fact.get(field)
            if not isinstance(value, str):
                raise CertFactError(f"{where}.{field} is missing or not text")
            checked[field] = value
        if not _STEM.fullmatch(checked["name"]):
            raise CertFactError(f"{where}.name {checked['name']!r} is not a file stem")
        if checked["purpose"] not in ("server", "client"):
            raise CertFactError(f"{where}.purpose {checked['purpose']!r} is not server or client")
        for field in CERT_FACT_PATHS:
            checked_path(checked[field], f"{where}.{field}")
        found.append(checked)
    return found
