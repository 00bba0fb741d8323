"""Facts about certificates and CSRs, named the way openssl names them.

`describe()` turns a parsed certificate or CSR into a frozen `Facts` record;
`Facts.to_json()` is the documented `pisec inspect --json` schema and
`render_text()` mirrors the sections of `openssl x509 -text -noout`, adding
what a person wants first (days left, fingerprint, CA, self-signed).

Like openssl, pisec shows what it can of a certificate that is partly
damaged or uses an algorithm it does not support: a damaged extension is
shown as `<unparseable>` with its bytes, an unsupported key by its OIDs, and
each such finding is listed under `problems`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from pisec import der
from pisec.certfile import Item
from pisec.extensions import AnyExtension, DamagedExtension, read_extensions
from pisec.keys import PublicKeyFacts, key_facts
from pisec.names import constraint, general_name, name_text
from pisec.oids import (
    ACCESS_METHODS,
    EXTENDED_KEY_USAGES,
    EXTENSION_TITLES,
    KEY_ERRORS,
    KEY_USAGES,
    REASONS,
    SIGNATURE_ALGORITHMS,
    Validity,
    colon_hex,
    extension_title,
)
from pisec.rules import serial_hex


@dataclass(frozen=True)
class ExtensionFacts:
    title: str
    critical: bool
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """What `pisec inspect` knows about one certificate or CSR."""

    kind: str
    source: str
    index: int
    encoding: str
    subject: str
    subject_text: str
    issuer: str | None
    issuer_text: str | None
    serial: str | None
    version: int | None
    not_before: datetime | None
    not_after: datetime | None
    signature_algorithm: str
    public_key: PublicKeyFacts
    san: tuple[str, ...]
    is_ca: bool
    path_length: int | None
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    fingerprint_sha256: str
    days_left: int | None
    self_signed: bool | None
    signature_valid: bool | None
    extensions: tuple[ExtensionFacts, ...] = field(default_factory=tuple)
    validity: Validity | None = None
    starts_in_days: int | None = None  # whole days until not_before, when not yet valid
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "index": self.index,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "signature_algorithm": self.signature_algorithm,
            "public_key": {
                "type": self.public_key.type,
                "bits": self.public_key.bits,
                "curve": self.public_key.curve,
            },
            "san": list(self.san),
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "fingerprint_sha256": self.fingerprint_sha256,
            "validity": self.validity,
            "days_left": self.days_left,
            "self_signed": self.self_signed,
            "signature_valid": self.signature_valid,
            "extensions": [
                {"name": ext.title, "critical": ext.critical, "value": list(ext.lines)}
                for ext in self.extensions
            ],
            "problems": list(self.problems),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signature_algorithm(oid: x509.ObjectIdentifier) -> str:
    return SIGNATURE_ALGORITHMS.get(oid.dotted_string, oid.dotted_string)


def _key_usage_names(usage: x509.KeyUsage) -> list[str]:
    names = [label for attribute, label in KEY_USAGES if getattr(usage, attribute)]
    if usage.key_agreement:
        if usage.encipher_only:
            names.append("Encipher Only")
        if usage.decipher_only:
            names.append("Decipher Only")
    return names


def _eku_names(usage: x509.ExtendedKeyUsage) -> list[str]:
    return [EXTENDED_KEY_USAGES.get(oid.dotted_string, oid.dotted_string) for oid in usage]


def _authority_key_identifier(value: x509.AuthorityKeyIdentifier) -> list[str]:
    lines = []
    # openssl labels the key id only when an issuer or serial follows it.
    labelled = bool(value.authority_cert_issuer) or value.authority_cert_serial_number is not None
    if value.key_identifier is not None:
        lines.append(("keyid:" if labelled else "") + colon_hex(value.key_identifier))
    lines.extend(general_name(issuer) for issuer in value.authority_cert_issuer or [])
    if value.authority_cert_serial_number is not None:
        serial = bytes.fromhex(serial_hex(value.authority_cert_serial_number).lstrip("-"))
        lines.append(f"serial:{colon_hex(serial)}")
    return lines


def _distribution_points(value: x509.CRLDistributionPoints) -> list[str]:
    lines = []
    for point in value:
        if point.full_name:
            lines.append("Full Name:")
            lines.extend(f"  {general_name(name, 'print')}" for name in point.full_name)
        if point.relative_name:
            lines.extend(["Relative Name:", f"  {name_text(point.relative_name)}"])
        if point.reasons:
            reasons = [label for flag, label in REASONS if flag in point.reasons]
            lines.extend(["Reasons:", "  " + ", ".join(reasons)])
        if point.crl_issuer:
            lines.append("CRL Issuer:")
            lines.extend(f"  {general_name(name, 'print')}" for name in point.crl_issuer)
    return lines


def _name_constraints(value: x509.NameConstraints) -> list[str]:
    lines = []
    for heading, subtrees in (
        ("Permitted:", value.permitted_subtrees),
        ("Excluded:", value.excluded_subtrees),
    ):
        if subtrees:
            lines.append(heading)
            lines.extend(f"  {constraint(name)}" for name in subtrees)
    return lines


def _extension_lines(value: x509.ExtensionType) -> list[str]:
    if isinstance(value, x509.SubjectAlternativeName | x509.IssuerAlternativeName):
        return [", ".join(general_name(name) for name in value)]
    if isinstance(value, x509.BasicConstraints):
        text = "CA:TRUE" if value.ca else "CA:FALSE"
        if value.path_length is not None:
            text += f", pathlen:{value.path_length}"
        return [text]
    if isinstance(value, x509.KeyUsage):
        return [", ".join(_key_usage_names(value))]
    if isinstance(value, x509.ExtendedKeyUsage):
        return [", ".join(_eku_names(value))]
    if isinstance(value, x509.SubjectKeyIdentifier):
        return [colon_hex(value.digest)]
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return _authority_key_identifier(value)
    if isinstance(value, x509.CRLDistributionPoints):
        return _distribution_points(value)
    if isinstance(value, x509.NameConstraints):
        return _name_constraints(value)
    if isinstance(value, x509.AuthorityInformationAccess):
        return [
            f"{ACCESS_METHODS.get(d.access_method.dotted_string, d.access_method.dotted_string)}"
            f" - {general_name(d.access_location)}"
            for d in value
        ]
    if isinstance(value, x509.CertificatePolicies):
        return [f"Policy: {policy.policy_identifier.dotted_string}" for policy in value]
    if isinstance(value, x509.UnrecognizedExtension):
        return [colon_hex(value.value, upper=False)]
    return [repr(value)]


def _extension_facts(extension: AnyExtension) -> ExtensionFacts:
    if isinstance(extension, DamagedExtension):
        lines = [f"<unparseable: {extension.why}>"]
        if extension.raw:
            lines.append(colon_hex(extension.raw, upper=False))
        return ExtensionFacts(extension.title, extension.critical, tuple(lines))
    oid = extension.oid.dotted_string
    if oid in EXTENSION_TITLES or isinstance(extension.value, x509.UnrecognizedExtension):
        title = extension_title(oid)
    else:
        title = getattr(extension.oid, "_name", oid)
    return ExtensionFacts(title, extension.critical, tuple(_extension_lines(extension.value)))


def _get(extensions: list[AnyExtension], kind: type[Any]) -> Any:
    for extension in extensions:
        if not isinstance(extension, DamagedExtension) and isinstance(extension.value, kind):
            return extension.value
    return None


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool | None:
    """`parent` issued `child` (names chain, signature verifies); None when the
    names chain but pisec cannot check the signature's algorithm or key."""
    try:
        if child.issuer != parent.subject:
            return False
    except ValueError:  # a damaged name chains to nothing
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, TypeError):
        return False
    except (ValueError, UnsupportedAlgorithm):
        return None
    return True


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """`parent` issued `child`: names chain and the signature verifies."""
    return signed_by(child, parent) is True


def _csr_signature_valid(value: x509.CertificateSigningRequest) -> bool | None:
    try:
        return value.is_signature_valid
    except KEY_ERRORS:
        return None


def _validity(
    not_before: datetime, not_after: datetime, moment: datetime
) -> tuple[Validity, int | None]:
    if moment < not_before:
        return "not yet valid", math.floor((not_before - moment) / timedelta(days=1))
    if moment > not_after:
        return "expired", None
    return "valid", None


UNPARSEABLE = "<unparseable>"


def read_name(
    value: x509.Certificate | x509.CertificateSigningRequest, which: Literal["subject", "issuer"]
) -> x509.Name | str:
    """The subject or issuer name, or why it cannot be read (cryptography
    decodes names only when asked, and refuses e.g. a UTF8String that is not
    UTF-8)."""
    try:
        name: x509.Name = getattr(value, which)
    except ValueError as exc:
        return f"the {which} name is damaged ({der.explain(exc)})"
    return name


def describe(item: Item, now: datetime | None = None) -> Facts:
    moment = now or datetime.now(UTC)
    value = item.value
    extensions = read_extensions(value)
    public_key = key_facts(value)
    problems = [ext.problem for ext in extensions if isinstance(ext, DamagedExtension)]
    subject = read_name(value, "subject")
    if isinstance(subject, str):
        problems.append(subject)
    if public_key.problem:
        problems.append(public_key.problem)
    san_ext = _get(extensions, x509.SubjectAlternativeName)
    basic = _get(extensions, x509.BasicConstraints)
    key_usage = _get(extensions, x509.KeyUsage)
    eku = _get(extensions, x509.ExtendedKeyUsage)
    der_bytes = value.public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der_bytes)
    common: dict[str, Any] = {
        "kind": item.kind,
        "source": item.source,
        "index": item.index,
        "encoding": item.encoding,
        "subject": subject.rfc4514_string() if isinstance(subject, x509.Name) else UNPARSEABLE,
        "subject_text": name_text(subject) if isinstance(subject, x509.Name) else UNPARSEABLE,
        "signature_algorithm": _signature_algorithm(value.signature_algorithm_oid),
        "public_key": public_key,
        "san": tuple(general_name(name) for name in san_ext) if san_ext else (),
        "is_ca": bool(basic and basic.ca),
        "path_length": basic.path_length if basic else None,
        "key_usage": tuple(_key_usage_names(key_usage)) if key_usage else (),
        "extended_key_usage": tuple(_eku_names(eku)) if eku else (),
        "fingerprint_sha256": colon_hex(digest.finalize()),
        "extensions": tuple(_extension_facts(extension) for extension in extensions),
    }
    if isinstance(value, x509.Certificate):
        not_before, not_after = value.not_valid_before_utc, value.not_valid_after_utc
        validity, starts_in_days = _validity(not_before, not_after, moment)
        issuer = read_name(value, "issuer")
        if isinstance(issuer, str):
            problems.append(issuer)
        self_signed = signed_by(value, value)
        if self_signed is None:
            problems.append("pisec cannot check the signature: unsupported algorithm or key")
        return Facts(
            issuer=issuer.rfc4514_string() if isinstance(issuer, x509.Name) else UNPARSEABLE,
            issuer_text=name_text(issuer) if isinstance(issuer, x509.Name) else UNPARSEABLE,
            serial=serial_hex(value.serial_number),
            version=value.version.value + 1,
            not_before=not_before,
            not_after=not_after,
            days_left=(not_after - moment).days,
            self_signed=self_signed,
            signature_valid=None,
            validity=validity,
            starts_in_days=starts_in_days,
            problems=tuple(problems),
            **common,
        )
    return Facts(
        issuer=None,
        issuer_text=None,
        serial=None,
        version=1,
        not_before=None,
        not_after=None,
        days_left=None,
        self_signed=None,
        signature_valid=_csr_signature_valid(value),
        problems=tuple(problems),
        **common,
    )
