"""Serial numbers, renewal and CRL status for the roles and playbooks.

Serials are shown in the form `openssl x509 -serial` and `pisec inspect`
print (uppercase hex, whole bytes), so that an operator can paste one into
`playbooks/revoke.yml -e serial=...` from either tool. (The CA's own
records and CRLs are its modules' work: plugins/module_utils.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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


def certificate_due(
    certificate_pem: Any,
    signing_ca_pem: Any,
    key_type: str,
    key_curve: str,
    key_size: Any,
    fraction_left: Any,
    jitter: Any = 0.0,
    force: Any = False,
    new_key_on_renewal: Any = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What the controller decides about a host's served certificate (PEM, as
    the host reports it), parsed here:

    - `due`: forced, expired, not yet valid, issued by another CA than the
      one that signs now (`signing_ca_pem`, its key identifier), with less
      than `fraction_left` (plus a share of `jitter` drawn for this
      certificate and day) of its lifetime left, or for a key of another
      kind than the inventory asks for;
    - `new_key`: renew with a new key (due by time and `new_key_on_renewal`,
      or the key is of another kind);
    - `serial`: its serial as pisec prints serials ("" without one).

    A report that is not a certificate is due, with a new key: whatever the
    host serves there is replaced, and the CA decides what it gets."""
    text = str(certificate_pem or "").strip()
    if not text:
        return {"due": False, "new_key": False, "serial": ""}
    try:
        certificate = x509.load_pem_x509_certificate(text.encode("ascii"))
        key = certificate.public_key()
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except (ValueError, UnicodeEncodeError):
        return {"due": True, "new_key": True, "serial": ""}
    if key_type == "ecdsa":
        other_kind = not (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == key_curve
        )
    else:
        other_kind = not (isinstance(key, rsa.RSAPublicKey) and key.key_size == int(key_size))
    moment = now or datetime.now(UTC)
    serial = rules.serial_hex(certificate.serial_number)
    by_time = (
        boolean(force, strict=False)
        or rules.renewal_due_with_jitter(
            not_before, not_after, moment, float(fraction_left), float(jitter), serial
        )
        or _authority_key_id(certificate) != _signing_key_id(signing_ca_pem, certificate)
    )
    return {
        "due": by_time or other_kind,
        "new_key": (by_time and boolean(new_key_on_renewal, strict=False)) or other_kind,
        "serial": serial,
    }


def _authority_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        value = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value.key_identifier


def _signing_key_id(signing_ca_pem: Any, certificate: x509.Certificate) -> bytes | None:
    """The key identifier of the CA that signs now; without one published
    (a dry run before the CA exists), the certificate's own issuer counts."""
    text = str(signing_ca_pem or "").strip()
    if not text:
        return _authority_key_id(certificate)
    try:
        ca = x509.load_pem_x509_certificate(text.encode("ascii"))
        return ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (ValueError, UnicodeEncodeError, x509.ExtensionNotFound) as exc:
        raise AnsibleFilterError(f"the signing CA certificate cannot be read: {exc}") from None


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
            "pisec_certificate_due": certificate_due,
            "pisec_cert_fact": cert_fact,
            "pisec_serial_hex": serial_hex,
            "pisec_ca_subject": ca_subject,
            "pisec_crl_status": crl_status,
        }
