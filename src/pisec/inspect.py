"""Facts about certificates and CSRs, named the way openssl names them.

`describe()` turns a parsed certificate or CSR into a frozen `Facts` record;
`Facts.to_json()` is the documented `pisec inspect --json` schema and
`render_text()` mirrors the sections of `openssl x509 -text -noout`, adding
what a person wants first (days left, fingerprint, CA, self-signed).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from pisec.certfile import Item

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
}

# openssl's short names for subject attributes, as `-text` prints them.
_NAME_LABELS = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
}

_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ASN1_CURVES = {"secp256r1": "prime256v1"}

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
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    "2.5.29.37.0": "Any Extended Key Usage",
}

_EXTENSION_TITLES = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME: "X509v3 Subject Alternative Name",
    ExtensionOID.ISSUER_ALTERNATIVE_NAME: "X509v3 Issuer Alternative Name",
    ExtensionOID.BASIC_CONSTRAINTS: "X509v3 Basic Constraints",
    ExtensionOID.KEY_USAGE: "X509v3 Key Usage",
    ExtensionOID.EXTENDED_KEY_USAGE: "X509v3 Extended Key Usage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER: "X509v3 Subject Key Identifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER: "X509v3 Authority Key Identifier",
    ExtensionOID.CRL_DISTRIBUTION_POINTS: "X509v3 CRL Distribution Points",
    ExtensionOID.NAME_CONSTRAINTS: "X509v3 Name Constraints",
    ExtensionOID.CERTIFICATE_POLICIES: "X509v3 Certificate Policies",
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS: "Authority Information Access",
}


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


def name_text(name: x509.Name) -> str:
    """`CN = x, O = y`, in certificate order, as openssl 3 prints it."""
    parts = []
    for attribute in name:
        label = _NAME_LABELS.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        parts.append(f"{label} = {value}")
    return ", ".join(parts)


def general_name_text(general_name: x509.GeneralName) -> str:
    """One SAN entry as openssl renders it (`DNS:pi-01`, `IP Address:10.0.0.5`)."""
    if isinstance(general_name, x509.DNSName):
        return f"DNS:{general_name.value}"
    if isinstance(general_name, x509.IPAddress):
        address = general_name.value
        if isinstance(address, ipaddress.IPv6Address):
            groups = address.exploded.split(":")
            return "IP Address:" + ":".join(g.lstrip("0").upper() or "0" for g in groups)
        if isinstance(address, ipaddress.IPv4Address):
            return f"IP Address:{address}"
        return f"IP Address:{address}"
    if isinstance(general_name, x509.RFC822Name):
        return f"email:{general_name.value}"
    if isinstance(general_name, x509.UniformResourceIdentifier):
        return f"URI:{general_name.value}"
    if isinstance(general_name, x509.DirectoryName):
        return "DirName:" + "/".join(
            f"{_NAME_LABELS.get(a.oid, a.oid.dotted_string)}={a.value!s}"
            for a in general_name.value
        )
    if isinstance(general_name, x509.RegisteredID):
        return f"Registered ID:{general_name.value.dotted_string}"
    return "othername:<unsupported>"


@dataclass(frozen=True)
class PublicKeyFacts:
    type: str
    bits: int
    curve: str | None = None
    algorithm: str = ""  # openssl's "Public Key Algorithm"


def public_key_facts(key: Any) -> PublicKeyFacts:
    if isinstance(key, rsa.RSAPublicKey):
        return PublicKeyFacts("RSA", key.key_size, None, "rsaEncryption")
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = key.curve.name
        return PublicKeyFacts("EC", key.key_size, _NIST_CURVES.get(name, name), "id-ecPublicKey")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKeyFacts("Ed25519", 256, None, "ED25519")
    if isinstance(key, ed448.Ed448PublicKey):
        return PublicKeyFacts("Ed448", 456, None, "ED448")
    if isinstance(key, dsa.DSAPublicKey):
        return PublicKeyFacts("DSA", key.key_size, None, "dsaEncryption")
    return PublicKeyFacts(type(key).__name__, 0, None, "unknown")


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
            "days_left": self.days_left,
            "self_signed": self.self_signed,
            "signature_valid": self.signature_valid,
            "extensions": [
                {"name": ext.title, "critical": ext.critical, "value": list(ext.lines)}
                for ext in self.extensions
            ],
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


def _extension_lines(extension: x509.Extension[x509.ExtensionType]) -> list[str]:
    value = extension.value
    if isinstance(value, x509.SubjectAlternativeName | x509.IssuerAlternativeName):
        return [", ".join(general_name_text(name) for name in value)]
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
        lines = []
        if value.key_identifier is not None:
            lines.append(colon_hex(value.key_identifier))
        for issuer in value.authority_cert_issuer or []:
            lines.append(general_name_text(issuer))
        if value.authority_cert_serial_number is not None:
            lines.append(
                f"serial:{colon_hex(bytes.fromhex(serial_hex(value.authority_cert_serial_number)))}"
            )
        return lines
    if isinstance(value, x509.CRLDistributionPoints):
        lines = []
        for point in value:
            lines.append("Full Name:")
            lines.extend(f"  {general_name_text(name)}" for name in point.full_name or [])
        return lines
    if isinstance(value, x509.NameConstraints):
        lines = []
        if value.permitted_subtrees:
            lines.append("Permitted:")
            lines.extend(f"  {general_name_text(name)}" for name in value.permitted_subtrees)
        if value.excluded_subtrees:
            lines.append("Excluded:")
            lines.extend(f"  {general_name_text(name)}" for name in value.excluded_subtrees)
        return lines
    if isinstance(value, x509.AuthorityInformationAccess):
        methods = {"1.3.6.1.5.5.7.48.1": "OCSP", "1.3.6.1.5.5.7.48.2": "CA Issuers"}
        return [
            f"{methods.get(d.access_method.dotted_string, d.access_method.dotted_string)} - "
            f"{general_name_text(d.access_location)}"
            for d in value
        ]
    if isinstance(value, x509.CertificatePolicies):
        return [f"Policy: {policy.policy_identifier.dotted_string}" for policy in value]
    if isinstance(value, x509.UnrecognizedExtension):
        return [colon_hex(value.value, upper=False)]
    return [repr(value)]


def _extensions(extensions: x509.Extensions) -> list[ExtensionFacts]:
    facts = []
    for extension in extensions:
        title = _EXTENSION_TITLES.get(extension.oid)
        if title is None:
            title = (
                extension.oid.dotted_string
                if isinstance(extension.value, x509.UnrecognizedExtension)
                else getattr(extension.oid, "_name", extension.oid.dotted_string)
            )
        facts.append(ExtensionFacts(title, extension.critical, tuple(_extension_lines(extension))))
    return facts


def _get(extensions: x509.Extensions, kind: type[Any]) -> Any:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """`parent` issued `child`: names chain and the signature verifies."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def describe(item: Item, now: datetime | None = None) -> Facts:
    moment = now or datetime.now(UTC)
    value = item.value
    extensions = value.extensions
    public_key = public_key_facts(value.public_key())
    san_ext = _get(extensions, x509.SubjectAlternativeName)
    basic = _get(extensions, x509.BasicConstraints)
    key_usage = _get(extensions, x509.KeyUsage)
    eku = _get(extensions, x509.ExtendedKeyUsage)
    der = value.public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    common: dict[str, Any] = {
        "kind": item.kind,
        "source": item.source,
        "index": item.index,
        "encoding": item.encoding,
        "subject": value.subject.rfc4514_string(),
        "subject_text": name_text(value.subject),
        "signature_algorithm": _signature_algorithm(value.signature_algorithm_oid),
        "public_key": public_key,
        "san": tuple(general_name_text(name) for name in san_ext) if san_ext else (),
        "is_ca": bool(basic and basic.ca),
        "path_length": basic.path_length if basic else None,
        "key_usage": tuple(_key_usage_names(key_usage)) if key_usage else (),
        "extended_key_usage": tuple(_eku_names(eku)) if eku else (),
        "fingerprint_sha256": colon_hex(digest.finalize()),
        "extensions": tuple(_extensions(extensions)),
    }
    if isinstance(value, x509.Certificate):
        not_after = value.not_valid_after_utc
        return Facts(
            issuer=value.issuer.rfc4514_string(),
            issuer_text=name_text(value.issuer),
            serial=serial_hex(value.serial_number),
            version=value.version.value + 1,
            not_before=value.not_valid_before_utc,
            not_after=not_after,
            days_left=(not_after - moment).days,
            self_signed=issued_by(value, value),
            signature_valid=None,
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
        signature_valid=value.is_signature_valid,
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
    if facts.days_left < 0:
        return style.bad(f"expired {-facts.days_left} days ago")
    text = f"{facts.days_left} days left"
    return style.warn(text) if facts.days_left < 30 else style.good(text)


def render_text(facts: Facts, out: TextIO, style: Style) -> None:
    title = "Certificate" if facts.kind == "certificate" else "Certificate Request"
    out.write(style.bold(f"{facts.source} [{facts.index}] {title} ({facts.encoding})") + "\n")
    summary = [facts.subject_text or "(empty subject)"]
    if facts.kind == "certificate":
        summary.append(_days_text(facts, style))
        summary.append("CA" if facts.is_ca else "not a CA")
        summary.append(
            "self-signed" if facts.self_signed else "issued by " + (facts.issuer_text or "")
        )
    else:
        summary.append("signature valid" if facts.signature_valid else style.bad("BAD SIGNATURE"))
    out.write("    " + " | ".join(summary) + "\n")
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
    out.write(f"            Public Key Algorithm: {facts.public_key.algorithm}\n")
    key = facts.public_key
    if key.type in ("RSA", "DSA", "EC"):
        out.write(f"                Public-Key: ({key.bits} bit)\n")
    if key.curve:
        sec_name = {v: k for k, v in _NIST_CURVES.items()}.get(key.curve, key.curve)
        out.write(f"                ASN1 OID: {_ASN1_CURVES.get(sec_name, sec_name)}\n")
        if key.curve.startswith("P-"):
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
