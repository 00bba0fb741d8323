"""The fleet's revocation record, shared by pisec_ca's modules.

It lives beside the CA directories (<pisec_ca_dir>.revoked.yml), not inside
one, so that a rollover's renames never leave it behind: a revoked identity
stays revoked under every CA that comes after. Each entry names the CA that
issued the revoked certificate by its key identifier, so that each CA's CRL
lists only its own serials. Records written by earlier versions inside a
generation directory (<generation>/revoked.yml) are read too and merged in,
attributed to that generation's CA.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

try:
    import yaml

    HAS_YAML = True
except ImportError:  # reported by the modules with missing_required_lib
    HAS_YAML = False

from ansible.module_utils.pisec_ca_store import (
    ASN1_TIME,
    TRUSTED_SUFFIXES,
    StoreError,
    generation_path,
    key_id,
    load_certificate_file,
    normal_serial,
    read_text,
    retired_paths,
    write_atomically,
)

RECORD_SUFFIX = ".revoked.yml"
LEGACY_RECORD = "revoked.yml"
REASONS = (
    "unspecified",
    "key_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate. `cn` is set when an identity was revoked
    (revoke.yml -e cn=...), empty when one certificate was (-e serial=...)."""

    serial: str
    issuer: str
    cn: str
    reason: str
    revoked_at: str
    subject: str = ""
    readmitted: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.issuer, self.serial)

    @property
    def revoked_at_time(self) -> datetime:
        return datetime.strptime(self.revoked_at, ASN1_TIME).replace(tzinfo=UTC)

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "serial": self.serial,
            "issuer": self.issuer,
            "cn": self.cn,
            "subject": self.subject,
            "reason": self.reason,
            "revoked_at": self.revoked_at,
        }
        if self.readmitted:
            entry["readmitted"] = True
        return entry


def record_path(ca_dir: str) -> str:
    return f"{ca_dir.rstrip('/')}{RECORD_SUFFIX}"


def _parse_entries(path: str, default_issuer: str) -> list[Revocation]:
    if not HAS_YAML:
        raise StoreError(f"{path}: reading it needs PyYAML (python3-yaml) on the CA host")
    try:
        data = yaml.safe_load(read_text(path, "a YAML revocation record"))
    except yaml.YAMLError as exc:
        raise StoreError(f"{path}: not YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise StoreError(f"{path}: a revocation record is a list of entries")
    entries = []
    for number, item in enumerate(data, start=1):
        where = f"{path}: entry {number}"
        if not isinstance(item, dict):
            raise StoreError(f"{where}: not a mapping")
        serial = normal_serial(item.get("serial", ""))
        if not serial:
            raise StoreError(f"{where}: serial {item.get('serial')!r} is not hex")
        issuer = str(item.get("issuer") or default_issuer)
        if not issuer:
            raise StoreError(f"{where}: names no issuer")
        reason = str(item.get("reason") or "unspecified")
        if reason not in REASONS:
            raise StoreError(f"{where}: reason {reason!r} is not one of {', '.join(REASONS)}")
        revoked_at = str(item.get("revoked_at", ""))
        try:
            datetime.strptime(revoked_at, ASN1_TIME)
        except ValueError:
            raise StoreError(f"{where}: revoked_at {revoked_at!r} is not YYYYMMDDHHMMSSZ") from None
        readmitted = item.get("readmitted", False)
        if not isinstance(readmitted, bool):
            raise StoreError(f"{where}: readmitted must be true or false")
        entries.append(
            Revocation(
                serial=serial,
                issuer=issuer,
                cn=str(item.get("cn") or ""),
                reason=reason,
                revoked_at=revoked_at,
                subject=str(item.get("subject") or ""),
                readmitted=readmitted,
            )
        )
    return entries


def read_record(ca_dir: str) -> list[Revocation]:
    """Every revocation of the fleet: the record beside the CA directories,
    then entries only an earlier version's per-generation record holds."""
    path = record_path(ca_dir)
    entries = _parse_entries(path, "") if os.path.isfile(path) else []
    seen = {entry.key for entry in entries}
    legacy_dirs = [generation_path(ca_dir, suffix) for suffix in TRUSTED_SUFFIXES]
    for directory in legacy_dirs + retired_paths(ca_dir):
        legacy = os.path.join(directory, LEGACY_RECORD)
        certificate_path = os.path.join(directory, "ca.crt")
        if not (os.path.isfile(legacy) and os.path.isfile(certificate_path)):
            continue
        issuer = key_id(load_certificate_file(certificate_path))
        for entry in _parse_entries(legacy, issuer):
            if entry.key not in seen:
                seen.add(entry.key)
                entries.append(entry)
    return entries


RECORD_HEADER = """\
# The fleet CA's revocation record, written by pisec (playbooks/revoke.yml).
# One entry per revoked certificate, under every CA generation: `issuer` is
# the key identifier of the CA that issued it, and that CA's CRL lists it.
# An entry with a `cn` revoked that identity: pisec issues it no certificate
# again, under this CA or any later one, until `readmitted: true` is set on
# each of its entries (the serials stay revoked).
"""


def write_record(ca_dir: str, entries: Iterable[Revocation]) -> None:
    text = RECORD_HEADER + yaml.safe_dump(
        [entry.as_dict() for entry in entries], sort_keys=False, default_flow_style=False
    )
    write_atomically(record_path(ca_dir), text.encode("ascii"), 0o600)


def revoked_identities(entries: Iterable[Revocation]) -> list[str]:
    """Identities revoked and not re-admitted, sorted."""
    return sorted({entry.cn for entry in entries if entry.cn and not entry.readmitted})
