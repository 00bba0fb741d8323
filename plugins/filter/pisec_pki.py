"""Serial numbers and revocation entries for the fleet CA.

Serials are kept in the form `openssl x509 -serial` and `pisec inspect`
print (uppercase hex, whole bytes), so that an operator can paste one into
`playbooks/revoke.yml -e serial=...` from either tool.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError

REASONS = (
    "unspecified",
    "key_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)


def serial_hex(serial: Any) -> str:
    """An integer serial as openssl prints it: uppercase hex in whole bytes."""
    try:
        number = int(serial)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"serial {serial!r} is not an integer") from None
    if number < 0:
        raise AnsibleFilterError(f"serial {serial!r} is negative")
    digits = f"{number:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def revocation(serial: str, cn: str, reason: str, at: str) -> dict[str, str]:
    """One entry of the CA's revocation record."""
    if reason not in REASONS:
        raise AnsibleFilterError(f"revocation reason {reason!r} is not one of {', '.join(REASONS)}")
    return {"serial": serial, "cn": cn, "reason": reason, "revoked_at": at}


def crl_entry(record: Mapping[str, Any]) -> dict[str, str]:
    """A revocation record entry as community.crypto.x509_crl takes it
    (serial_numbers: hex-octets)."""
    try:
        serial = str(record["serial"]).replace(":", "").upper()
        revoked_at = str(record["revoked_at"])
    except (KeyError, TypeError):
        raise AnsibleFilterError(
            f"revocation record entry {record!r} lacks serial or revoked_at"
        ) from None
    if not serial or any(c not in "0123456789ABCDEF" for c in serial):
        raise AnsibleFilterError(f"revocation record: serial {serial!r} is not hex")
    if len(serial) % 2:
        serial = "0" + serial
    octets = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    entry = {"serial_number": octets, "revocation_date": revoked_at}
    reason = record.get("reason")
    if reason and reason != "unspecified":
        entry["reason"] = str(reason)
    return entry


def _asn1_time(text: Any, field: str) -> datetime:
    try:
        return datetime.strptime(str(text), "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AnsibleFilterError(f"certificate {field} {text!r} is not an ASN.1 time") from None


def renewal_due(
    info: Mapping[str, Any],
    fraction_left: float,
    jitter: float = 0.0,
    force: bool = False,
    now: datetime | None = None,
) -> bool:
    """Whether a certificate (community.crypto.x509_certificate_info output)
    should be renewed: forced, expired, not yet valid, or with less than
    `fraction_left` (plus a random share of `jitter`) of its lifetime left."""
    if force:
        return True
    not_before = _asn1_time(info.get("not_before"), "not_before")
    not_after = _asn1_time(info.get("not_after"), "not_after")
    moment = now or datetime.now(UTC)
    if moment < not_before or moment >= not_after:
        return True
    lifetime = (not_after - not_before).total_seconds()
    left = (not_after - moment).total_seconds()
    threshold = float(fraction_left) + float(jitter) * random.random()
    return left < lifetime * threshold


def ca_subject(common_name: str, organization: str, generation: Any = 1) -> list[dict[str, str]]:
    """The subject of the fleet CA of one generation, in order.

    The first CA carries the configured common name; each CA introduced by
    a rollover appends its generation ("pisec fleet CA G2"). Two CAs that are
    trusted at once must differ in name: OpenSSL picks a CRL by its issuer's
    name, and a broker that loaded the wrong CA's CRL refuses the client.
    """
    try:
        number = int(generation)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"CA generation {generation!r} is not an integer") from None
    if number < 1:
        raise AnsibleFilterError(f"CA generation {generation!r} is below 1")
    name = common_name if number == 1 else f"{common_name} G{number}"
    return [{"O": organization}, {"CN": name}]


class FilterModule:
    """pisec filters for the CA's serials and revocations."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_serial_hex": serial_hex,
            "pisec_revocation": revocation,
            "pisec_crl_entry": crl_entry,
            "pisec_renewal_due": renewal_due,
            "pisec_ca_subject": ca_subject,
        }
