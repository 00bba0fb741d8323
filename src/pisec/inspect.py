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

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dh,
    dsa,
    ec,
    ed448,
    ed25519,
    rsa,
    x448,
    x25519,
)
from cryptography.x509.oid import ExtensionOID

from pisec import der
from pisec.certfile import Item
from pisec.names import constraint, general_name, name_text

__all__ = ["Facts", "Style", "describe", "issued_by", "name_text", "render_text", "serial_hex"]

# openssl's names for signature algorithms, by OID.
SIGNATURE_ALGORITHMS = {
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
    "1.2.840.10040.4.3": "dsaWithSHA1",
    "2.16.840.1.101.3.4.3.1": "dsa_with_SHA224",
    "2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
    "1.2.156.10197.1.501": "SM2-with-SM3",
}

# openssl's "Public Key Algorithm" names, by OID.
KEY_ALGORITHMS = {
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.10045.2.1": "id-ecPublicKey",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
    "1.2.840.10040.4.1": "dsaEncryption",
    "1.2.840.113549.1.3.1": "dhKeyAgreement",
    "1.2.840.10046.2.1": "X9.42 DH",
    "1.2.156.10197.1.301": "SM2",
}
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ASN1_CURVES = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}
# Curves cryptography cannot load, by OID, named as openssl names them.
_OTHER_CURVES = {"1.2.156.10197.1.301": "SM2"}

_KEY_USAGES = (
    ("digital_signature", "Digital Signature"),
    ("content_commitment", "Non Repudiation"),
    ("key_encipherment", "Key Encipherment"),
    ("data_encipherment", "Data Encipherment"),
    ("key_agreement", "Key Agreement"),
    ("key_cert_sign", "Certificate Sign"),
    ("crl_sign", "CRL Sign"),
)

_EXTENDED_KEY_USAGES = {
    "1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
    "1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection",
    "1.3.6.1.5.5.7.3.5": "IPSec End System",
    "1.3.6.1.5.5.7.3.6": "IPSec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPSec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    "1.3.6.1.5.5.7.3.17": "ipsec Internet Key Exchange",
    "1.3.6.1.4.1.311.20.2.2": "Microsoft Smartcard Login",
    "2.5.29.37.0": "Any Extended Key Usage",
}

_EXTENSION_TITLES = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string: "X509v3 Subject Alternative Name",
    ExtensionOID.ISSUER_ALTERNATIVE_NAME.dotted_string: "X509v3 Issuer Alternative Name",
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string: "X509v3 Basic Constraints",
    ExtensionOID.KEY_USAGE.dotted_string: "X509v3 Key Usage",
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string: "X509v3 Extended Key Usage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string: "X509v3 Subject Key Identifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string: "X509v3 Authority Key Identifier",
    ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string: "X509v3 CRL Distribution Points",
    ExtensionOID.NAME_CONSTRAINTS.dotted_string: "X509v3 Name Constraints",
    ExtensionOID.CERTIFICATE_POLICIES.dotted_string: "X509v3 Certificate Policies",
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string: "Authority Information Access",
}

_ACCESS_METHODS = {
    "1.3.6.1.5.5.7.48.1": "OCSP",
    "1.3.6.1.5.5.7.48.2": "CA Issuers",
    "1.3.6.1.5.5.7.48.3": "Time Stamping",
    "1.3.6.1.5.5.7.48.5": "CA Repository",
}

# openssl's names for CRL reasons, in bit order (as `print_reasons` lists them).
_REASONS = (
    (x509.ReasonFlags.key_compromise, "Key Compromise"),
    (x509.ReasonFlags.ca_compromise, "CA Compromise"),
    (x509.ReasonFlags.affiliation_changed, "Affiliation Changed"),
    (x509.ReasonFlags.superseded, "Superseded"),
    (x509.ReasonFlags.cessation_of_operation, "Cessation Of Operation"),
    (x509.ReasonFlags.certificate_hold, "Certificate Hold"),
    (x509.ReasonFlags.privilege_withdrawn, "Privilege Withdrawn"),
    (x509.ReasonFlags.aa_compromise, "AA Compromise"),
)

# What cryptography raises for a certificate whose extensions do not parse.
EXTENSION_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
KEY_ERRORS = (ValueError, UnsupportedAlgorithm)

Validity = Literal["valid", "not yet valid", "expired"]


def serial_hex(serial: int) -> str:
    """Uppercase hex, whole bytes, no separators: `openssl x509 -serial`."""
    text = f"{serial:X}" if serial >= 0 else f"-{-serial:X}"
    digits = text.lstrip("-")
    if len(digits) % 2:
        digits = "0" + digits
    return ("-" if serial < 0 else "") + digits


def colon_hex(data: bytes, *, upper: bool = True) -> str:
    text = data.hex(":")
    return text.upper() if upper else text


def extension_title(oid: str) -> str:
    return _EXTENSION_TITLES.get(oid, oid)


# ---- Extensions, one at a time when they must be --------------------------


@dataclass(frozen=True)
class DamagedExtension:
    """An extension cryptography cannot parse: shown raw, like openssl does."""

    oid: str
    critical: bool
    raw: bytes
    why: str

    @property
    def title(self) -> str:
        return extension_title(self.oid) if self.oid else "X509v3 extensions"

    @property
    def problem(self) -> str:
        return f"{self.title} extension is damaged ({self.why})"


AnyExtension = x509.Extension[x509.ExtensionType] | DamagedExtension


@functools.cache
def _template_certificate() -> bytes:
    """A certificate to carry one extension at a time through cryptography's parser."""
    key = ed25519.Ed25519PrivateKey.generate()
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(moment)
        .not_valid_after(moment + timedelta(days=1))
        .sign(key, None)
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _parse_one(raw: der.RawExtension) -> AnyExtension:
    carrier = der.replace_extensions(_template_certificate(), [raw.encoded])
    try:
        extension: x509.Extension[x509.ExtensionType]
        [extension] = x509.load_der_x509_certificate(carrier).extensions
        return extension
    except EXTENSION_ERRORS as exc:
        return DamagedExtension(raw.oid, raw.critical, raw.value, der.explain(exc))


def read_extensions(value: x509.Certificate | x509.CertificateSigningRequest) -> list[AnyExtension]:
    """Every extension; those that do not parse (or repeat) as DamagedExtension."""
    try:
        return list(value.extensions)
    except EXTENSION_ERRORS as exc:
        whole_block_failed = exc
    try:
        if isinstance(value, x509.Certificate):
            raws = der.certificate_extensions(value.tbs_certificate_bytes)
        else:
            raws = der.csr_extensions(value.tbs_certrequest_bytes)
    except der.DerError:
        return [DamagedExtension("", False, b"", der.explain(whole_block_failed))]
    seen: set[str] = set()
    extensions: list[AnyExtension] = []
    for raw in raws:
        if raw.oid in seen:
            extensions.append(DamagedExtension(raw.oid, raw.critical, raw.value, "appears twice"))
            continue
        seen.add(raw.oid)
        extensions.append(_parse_one(raw))
    return extensions


def damaged_extensions(
    value: x509.Certificate | x509.CertificateSigningRequest,
) -> list[DamagedExtension]:
    return [ext for ext in read_extensions(value) if isinstance(ext, DamagedExtension)]


# ---- Public keys ------------------------------------------------------------


@dataclass(frozen=True)
class PublicKeyFacts:
    type: str
    bits: int
    curve: str | None = None
    algorithm: str = ""  # openssl's "Public Key Algorithm"
    heading: str = ""  # the line openssl prints under it
    asn1_curve: str | None = None  # openssl's "ASN1 OID"
    problem: str | None = None  # why pisec cannot use this key


def _sized_heading(bits: int) -> str:
    return f"Public-Key: ({bits} bit)"


def public_key_facts(key: Any, algorithm: str = "") -> PublicKeyFacts:
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        return PublicKeyFacts("RSA", bits, None, algorithm or "rsaEncryption", _sized_heading(bits))
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = key.curve.name
        return PublicKeyFacts(
            "EC",
            key.key_size,
            _NIST_CURVES.get(name, name),
            "id-ecPublicKey",
            _sized_heading(key.key_size),
            _ASN1_CURVES.get(name, name),
        )
    edwards: dict[type[Any], tuple[str, int, str]] = {
        ed25519.Ed25519PublicKey: ("Ed25519", 256, "ED25519"),
        ed448.Ed448PublicKey: ("Ed448", 456, "ED448"),
        x25519.X25519PublicKey: ("X25519", 256, "X25519"),
        x448.X448PublicKey: ("X448", 448, "X448"),
    }
    for kind, (label, bits, openssl_name) in edwards.items():
        if isinstance(key, kind):
            return PublicKeyFacts(label, bits, None, openssl_name, f"{openssl_name} Public-Key:")
    if isinstance(key, dsa.DSAPublicKey):
        bits = key.key_size
        return PublicKeyFacts("DSA", bits, None, "dsaEncryption", _sized_heading(bits))
    if isinstance(key, dh.DHPublicKey):
        bits = key.key_size
        return PublicKeyFacts(
            "DH", bits, None, algorithm or "dhKeyAgreement", f"DH Public-Key: ({bits} bit)"
        )
    return PublicKeyFacts(type(key).__name__, 0, None, algorithm or "unknown")


def _unreadable_key(
    value: x509.Certificate | x509.CertificateSigningRequest, exc: Exception
) -> PublicKeyFacts:
    """What openssl still shows of a key cryptography will not load: its OIDs."""
    problem = f"pisec cannot use this key: {der.explain(exc)}"
    try:
        if isinstance(value, x509.Certificate):
            info = der.public_key_info(value.tbs_certificate_bytes, request=False)
        else:
            info = der.public_key_info(value.tbs_certrequest_bytes, request=True)
    except der.DerError:
        return PublicKeyFacts("unsupported", 0, None, "unknown", "", None, problem)
    algorithm = KEY_ALGORITHMS.get(info.algorithm, info.algorithm)
    if info.algorithm == _EC_PUBLIC_KEY and info.parameter is not None:
        curve = _OTHER_CURVES.get(info.parameter, info.parameter)
        point = info.key  # uncompressed (04, x, y) or compressed (02/03, x)
        coordinate = (len(point) - 1) // 2 if point[:1] == b"\x04" else len(point) - 1
        bits = max(coordinate, 0) * 8
        return PublicKeyFacts(
            "EC", bits, curve, algorithm, _sized_heading(bits) if bits else "", curve, problem
        )
    return PublicKeyFacts(f"unsupported ({info.algorithm})", 0, None, algorithm, "", None, problem)


def key_facts(value: x509.Certificate | x509.CertificateSigningRequest) -> PublicKeyFacts:
    try:
        key = value.public_key()
    except KEY_ERRORS as exc:
        return _unreadable_key(value, exc)
    return public_key_facts(key, KEY_ALGORITHMS.get(_key_algorithm_oid(value), ""))


def _key_algorithm_oid(value: x509.Certificate | x509.CertificateSigningRequest) -> str:
    if isinstance(value, x509.Certificate):
        return value.public_key_algorithm_oid.dotted_string
    try:
        return der.public_key_info(value.tbs_certrequest_bytes, request=True).algorithm
    except der.DerError:
        return ""


# ---- Facts --------------------------------------------------------------------


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
    names = [label for attribute, label in _KEY_USAGES if getattr(usage, attribute)]
    if usage.key_agreement:
        if usage.encipher_only:
            names.append("Encipher Only")
        if usage.decipher_only:
            names.append("Decipher Only")
    return names


def _eku_names(usage: x509.ExtendedKeyUsage) -> list[str]:
    return [_EXTENDED_KEY_USAGES.get(oid.dotted_string, oid.dotted_string) for oid in usage]


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
            reasons = [label for flag, label in _REASONS if flag in point.reasons]
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
            f"{_ACCESS_METHODS.get(d.access_method.dotted_string, d.access_method.dotted_string)}"
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
    if oid in _EXTENSION_TITLES or isinstance(extension.value, x509.UnrecognizedExtension):
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


# ---- Rendering ---------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """ANSI styling when writing to a terminal, nothing otherwise."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)


def _openssl_time(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%b %d %H:%M:%S %Y GMT")
    # openssl pads the day with a space, not a zero.
    return text[:4] + (" " + text[5] if text[4] == "0" else text[4:6]) + text[6:]


def _days_text(facts: Facts, style: Style) -> str:
    if facts.days_left is None:
        return ""
    if facts.validity == "not yet valid" and facts.not_before is not None:
        days = facts.starts_in_days or 0
        when = f"in {days} days" if days else "in less than a day"
        return style.bad(f"NOT YET VALID: starts {facts.not_before:%Y-%m-%d} ({when})")
    if facts.days_left < 0:
        return style.bad(f"expired {-facts.days_left} days ago")
    text = f"{facts.days_left} days left"
    return style.warn(text) if facts.days_left < 30 else style.good(text)


def _issuer_text(facts: Facts) -> str:
    if facts.self_signed:
        return "self-signed"
    if facts.self_signed is None and facts.issuer == facts.subject:
        return "self-issued (signature not checked)"
    return "issued by " + (facts.issuer_text or "")


def render_text(facts: Facts, out: TextIO, style: Style) -> None:
    title = "Certificate" if facts.kind == "certificate" else "Certificate Request"
    out.write(style.bold(f"{facts.source} [{facts.index}] {title} ({facts.encoding})") + "\n")
    summary = [facts.subject_text or "(empty subject)"]
    if facts.kind == "certificate":
        summary.append(_days_text(facts, style))
        summary.append("CA" if facts.is_ca else "not a CA")
        summary.append(_issuer_text(facts))
    elif facts.signature_valid is None:
        summary.append(style.warn("signature not checked (unsupported algorithm)"))
    else:
        summary.append("signature valid" if facts.signature_valid else style.bad("BAD SIGNATURE"))
    out.write("    " + " | ".join(summary) + "\n")
    for problem in facts.problems:
        out.write("    " + style.bad(f"problem: {problem}") + "\n")
    out.write(f"    SHA-256 Fingerprint: {facts.fingerprint_sha256}\n")
    out.write("    Data:\n")
    out.write(f"        Version: {facts.version} (0x{(facts.version or 1) - 1:x})\n")
    if facts.serial is not None:
        serial_bytes = bytes.fromhex(facts.serial.lstrip("-"))
        out.write(f"        Serial Number:\n            {colon_hex(serial_bytes, upper=False)}\n")
        out.write(f"        Signature Algorithm: {facts.signature_algorithm}\n")
        out.write(f"        Issuer: {facts.issuer_text}\n")
        out.write("        Validity\n")
        if facts.not_before and facts.not_after:
            out.write(f"            Not Before: {_openssl_time(facts.not_before)}\n")
            out.write(f"            Not After : {_openssl_time(facts.not_after)}\n")
    out.write(f"        Subject: {facts.subject_text}\n")
    out.write("        Subject Public Key Info:\n")
    key = facts.public_key
    out.write(f"            Public Key Algorithm: {key.algorithm}\n")
    if key.heading:
        out.write(f"                {key.heading}\n")
    if key.asn1_curve:
        out.write(f"                ASN1 OID: {key.asn1_curve}\n")
        if key.curve and key.curve.startswith("P-"):
            out.write(f"                NIST CURVE: {key.curve}\n")
    if facts.extensions:
        heading = "X509v3 extensions" if facts.kind == "certificate" else "Requested Extensions"
        out.write(f"        {heading}:\n")
        for extension in facts.extensions:
            critical = " critical" if extension.critical else ""
            out.write(f"            {extension.title}:{critical}\n")
            for line in extension.lines:
                out.write(f"                {line}\n")
    out.write(f"    Signature Algorithm: {facts.signature_algorithm}\n")
