"""Serial numbers, renewal and CRL status for the roles and playbooks.

Serials are shown in the form `openssl x509 -serial` and `pisec inspect`
print (uppercase hex, whole bytes), so that an operator can paste one into
`playbooks/revoke.yml -e serial=...` from either tool. (The CA's own
records and CRLs are its modules' work: plugins/module_utils.)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError
from cryptography import x509

from pisec import rules


def serial_hex(serial: Any) -> str:
    """An integer serial as openssl prints it: uppercase hex in whole bytes
    (pisec.rules, the form of every part of pisec)."""
    try:
        number = int(serial)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"serial {serial!r} is not an integer") from None
    if number < 0:
        raise AnsibleFilterError(f"serial {serial!r} is negative")
    return rules.serial_hex(number)


def cert_facts(local: Any, host: str = "") -> list[dict[str, str]]:
    """The certificates a host's ansible_local records (pisec.rules.cert_facts),
    each path checked in full; a fact that is not what pisec writes stops
    the run naming the host and field."""
    try:
        return rules.cert_facts(local if isinstance(local, Mapping) else {})
    except rules.CertFactError as exc:
        raise AnsibleFilterError(f"{host}: {exc}" if host else str(exc)) from None


def cert_fact(local: Any, name: str, host: str = "") -> dict[str, str]:
    """The one recorded certificate with this name (pisec_host_cert_name), or
    a stop saying pisec has not recorded it on this host yet."""
    for fact in cert_facts(local, host):
        if fact["name"] == name:
            return fact
    raise AnsibleFilterError(
        f"{host or 'this host'}: no local fact {rules.CERT_FACT_DIR}/"
        f"{rules.CERT_FACT_PREFIX}{name.replace('-', '_')}.fact records the certificate "
        f"{name!r}: run site.yml on it first (pisec writes it since this version)"
    )


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
    threshold = float(fraction_left) + float(jitter) * random.random()
    return rules.renewal_due(not_before, not_after, now or datetime.now(UTC), threshold)


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


_CRL_BLOCK = re.compile(r"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def crl_status(pem: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each CRL of a PEM bundle (a broker's crlfile holds one per trusted
    CA): its issuer, nextUpdate and whole days left."""
    moment = now or datetime.now(UTC)
    found = []
    for block in _CRL_BLOCK.findall(str(pem)):
        try:
            crl = x509.load_pem_x509_crl(block.encode("ascii"))
        except ValueError as exc:
            raise AnsibleFilterError(f"a CRL that cannot be read: {exc}") from None
        issuer = crl.issuer.rfc4514_string()
        next_update = crl.next_update_utc
        if next_update is None:
            found.append(
                {
                    "issuer": issuer,
                    "next_update": None,
                    "days_left": -1,
                    "summary": f"{issuer}: no nextUpdate",
                }
            )
            continue
        days = (next_update - moment).days
        found.append(
            {
                "issuer": issuer,
                "next_update": next_update.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "days_left": days,
                "summary": f"{issuer}: {days} days left (next update {next_update:%Y-%m-%d})",
            }
        )
    return found


class FilterModule:
    """pisec filters for the CA's serials and revocations."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_cert_facts": cert_facts,
            "pisec_cert_fact": cert_fact,
            "pisec_serial_hex": serial_hex,
            "pisec_renewal_due": renewal_due,
            "pisec_ca_subject": ca_subject,
            "pisec_crl_status": crl_status,
        }
