"""What a certificate of the fleet CA says, and when it is renewed.

The controller decides a certificate's contents from the inventory (and, for
a broker, the addresses pisec gathers from it): a Profile. A host's CSR
comes from the host, and whoever has root there can forge it; so the CA
takes only the CSR's public key, after checking that the CSR is signed with
the matching private key (proof of possession), and refuses a CSR that asks
for anything the profile does not give, naming the field. What the CA
issues is built from the profile alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ansible.module_utils.pisec_ca_store import (
    Generation,
    certificate_signed_by,
    is_recorded,
    not_after,
    not_before,
    serial_hex,
)
from ansible.module_utils.pisec_rules import renewal_due_with_jitter
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

PURPOSES = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
CURVES = {"secp256r1": 256, "secp384r1": 384}
RSA_SIZES = (2048, 3072, 4096)
# A certificate CN that is also a safe MQTT user name and file name.
IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_RELATIVE = re.compile(r"-(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
_KNOWN_EXTENSIONS = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
}


class RequestRefusedError(Exception):
    """The CA will not sign this request. `problems` pairs each field that
    asked too much (or failed) with what it asked."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        self.fields = [field for field, _ in problems]
        super().__init__("; ".join(f"{field} {detail}" for field, detail in problems))


def normal_san(entry: str) -> str:
    """`DNS:name` or `IP:address`, normalised (lower-case name, compressed
    address); a ValueError names what is wrong."""
    kind, _, value = entry.partition(":")
    if kind == "DNS" and len(value) <= 253 and DNS_NAME.fullmatch(value.rstrip(".")):
        return f"DNS:{value.rstrip('.').lower()}"
    if kind == "IP":
        try:
            return f"IP:{ipaddress.ip_address(value).compressed}"
        except ValueError:
            pass
    raise ValueError(f"{entry!r} is not a valid 'DNS:name' or 'IP:address' entry")


@dataclass(frozen=True)
class Profile:
    """What the certificate of one host or device says."""

    common_name: str
    subject_alt_names: tuple[str, ...]
    purpose: str
    key_type: str
    key_curve: str = "secp256r1"
    key_size: int = 3072

    @classmethod
    def checked(
        cls,
        common_name: str,
        subject_alt_names: Iterable[str],
        purpose: str,
        key_type: str,
        key_curve: str = "secp256r1",
        key_size: int = 3072,
    ) -> Profile:
        """A profile from the controller's values; a ValueError names the bad one."""
        if not valid_common_name(common_name):
            raise ValueError(
                f"common name {common_name!r} is neither an identity (1 to 64 letters, digits "
                "and _.@-, starting with a letter or digit) nor an IP address"
            )
        if purpose not in PURPOSES:
            raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        names = tuple(dict.fromkeys(normal_san(entry) for entry in subject_alt_names))
        if names and purpose != "serverAuth":
            raise ValueError("client certificates carry no subject alternative names")
        if key_type == "ecdsa":
            if key_curve not in CURVES:
                raise ValueError(f"curve {key_curve!r} is not one of {', '.join(CURVES)}")
        elif key_type == "rsa":
            if key_size not in RSA_SIZES:
                raise ValueError(f"RSA key size {key_size} is not one of {RSA_SIZES}")
        else:
            raise ValueError(f"key type {key_type!r} is not ecdsa or rsa")
        return cls(common_name, names, purpose, key_type, key_curve, int(key_size))

    @property
    def subject(self) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)])

    @property
    def key_usage(self) -> x509.KeyUsage:
        # keyEncipherment only for RSA keys (RSA key transport); ECDSA signs.
        return x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=self.key_type == "rsa",
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = []
        for entry in self.subject_alt_names:
            kind, _, value = entry.partition(":")
            if kind == "DNS":
                names.append(x509.DNSName(value))
            else:
                names.append(x509.IPAddress(ipaddress.ip_address(value)))
        return names

    def key_problem(self, public_key: Any, min_rsa_key_size: int) -> str | None:
        """Why a public key is not of the kind this profile asks for, or None."""
        if self.key_type == "ecdsa":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                return f"is {_key_kind(public_key)}, the inventory asks for ECDSA {self.key_curve}"
            if public_key.curve.name != self.key_curve:
                return f"is ECDSA {public_key.curve.name}, the inventory asks for {self.key_curve}"
            return None
        if not isinstance(public_key, rsa.RSAPublicKey):
            return f"is {_key_kind(public_key)}, the inventory asks for RSA {self.key_size}"
        if public_key.key_size < min_rsa_key_size:
            return (
                f"is RSA {public_key.key_size}, below pisec_ca_min_rsa_key_size {min_rsa_key_size}"
            )
        if public_key.key_size != self.key_size:
            return f"is RSA {public_key.key_size}, the inventory asks for RSA {self.key_size}"
        return None


def valid_common_name(text: str) -> bool:
    """A CN pisec issues: an identity or an IP address (a broker known by it)."""
    return bool(IDENTITY.fullmatch(text)) or _is_ip(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _key_kind(public_key: Any) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ECDSA {public_key.curve.name}"
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    return type(public_key).__name__


def san_entries(names: Iterable[x509.GeneralName], field: str) -> list[str]:
    """GeneralNames as `DNS:`/`IP:` entries; any other kind is refused."""
    entries = []
    for name in names:
        if isinstance(name, x509.DNSName):
            entries.append(f"DNS:{name.value.rstrip('.').lower()}")
        elif isinstance(name, x509.IPAddress) and not isinstance(
            name.value, ipaddress.IPv4Network | ipaddress.IPv6Network
        ):
            entries.append(f"IP:{name.value.compressed}")
        else:
            raise RequestRefusedError(
                [(field, f"asks for a {type(name).__name__} entry; pisec issues DNS and IP only")]
            )
    return entries


def _usages(usage: x509.KeyUsage) -> set[str]:
    found = {name for name in _USAGE_NAMES if getattr(usage, name)}
    if usage.key_agreement:
        found |= {name for name in ("encipher_only", "decipher_only") if getattr(usage, name)}
    return found


def check_request(
    csr: x509.CertificateSigningRequest, profile: Profile, min_rsa_key_size: int
) -> None:
    """Refuse a CSR that lacks proof of possession or asks for more than the
    profile gives, naming every field that does. Nothing of the CSR but its
    public key is ever signed."""
    if not csr.is_signature_valid:
        raise RequestRefusedError(
            [
                (
                    "signature",
                    "does not verify with the request's own public key (no proof that the "
                    "host holds the private key)",
                )
            ]
        )
    problems: list[tuple[str, str]] = []
    key_problem = profile.key_problem(csr.public_key(), min_rsa_key_size)
    if key_problem:
        problems.append(("public key", key_problem))
    wanted = profile.subject
    if csr.subject != wanted:
        problems.append(
            (
                "subject",
                f"asks for {csr.subject.rfc4514_string() or 'an empty subject'}, "
                f"the inventory gives {wanted.rfc4514_string()}",
            )
        )
    try:
        extensions = list(csr.extensions)
    except (x509.DuplicateExtension, ValueError) as exc:
        raise RequestRefusedError([*problems, ("extensions", f"cannot be read ({exc})")]) from None
    for extension in extensions:
        problems.extend(_extension_problems(extension, profile))
    if problems:
        raise RequestRefusedError(problems)


def _extension_problems(extension: x509.Extension[Any], profile: Profile) -> list[tuple[str, str]]:
    value = extension.value
    if extension.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
        try:
            asked = san_entries(value, "subjectAltName")
        except RequestRefusedError as refused:
            return refused.problems
        extra = [entry for entry in asked if entry not in profile.subject_alt_names]
        if extra:
            given = ", ".join(profile.subject_alt_names) or "none (client certificates carry none)"
            return [("subjectAltName", f"asks for {', '.join(extra)}, the inventory gives {given}")]
    elif extension.oid == ExtensionOID.EXTENDED_KEY_USAGE:
        extra_purposes = [
            getattr(oid, "_name", oid.dotted_string)
            for oid in value
            if oid != PURPOSES[profile.purpose]
        ]
        if extra_purposes:
            return [
                (
                    "extendedKeyUsage",
                    f"asks for {', '.join(extra_purposes)}, this host gets {profile.purpose} only",
                )
            ]
    elif extension.oid == ExtensionOID.KEY_USAGE:
        extra_usages = sorted(_usages(value) - _usages(profile.key_usage))
        if extra_usages:
            allowed = ", ".join(sorted(_usages(profile.key_usage)))
            return [("keyUsage", f"asks for {', '.join(extra_usages)}, a leaf gets {allowed}")]
    elif extension.oid == ExtensionOID.BASIC_CONSTRAINTS:
        if value.ca:
            return [("basicConstraints", "asks for CA:TRUE, the fleet CA signs leaves only")]
    elif extension.oid not in _KNOWN_EXTENSIONS:
        name = getattr(extension.oid, "_name", extension.oid.dotted_string)
        return [(name, "is asked for, and the fleet CA adds no such extension to a leaf")]
    return []


def certificate_mismatch(
    certificate: x509.Certificate, profile: Profile, public_key: Any
) -> str | None:
    """Why a certificate is not exactly what this profile issues for this
    key, or None."""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(der, spki) != public_key.public_bytes(der, spki):
        return "it is for another key"
    if certificate.subject != profile.subject:
        return f"its subject is {certificate.subject.rfc4514_string()}"
    try:
        extensions = certificate.extensions
        basic = extensions.get_extension_for_class(x509.BasicConstraints)
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        purposes = list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError) as exc:
        return f"its extensions differ ({exc})"
    if basic.value.ca or not basic.critical:
        return "its basic constraints differ"
    if _usages(usage) != _usages(profile.key_usage):
        return "its key usage differs"
    if purposes != [PURPOSES[profile.purpose]]:
        return "its extended key usage differs"
    try:
        names = san_entries(
            extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            "subjectAltName",
        )
    except x509.ExtensionNotFound:
        names = []
    except RequestRefusedError:
        return "it names more than DNS and IP entries"
    if sorted(names) != sorted(profile.subject_alt_names):
        return "its subject alternative names differ"
    return None


def build_leaf(
    issuer: x509.Certificate,
    issuer_key: Any,
    public_key: Any,
    profile: Profile,
    valid_from: datetime,
    valid_until: datetime,
    digest: Any,
    authority_key: x509.AuthorityKeyIdentifier,
) -> x509.Certificate:
    """The certificate the profile describes, for this public key."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(profile.subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(profile.key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([PURPOSES[profile.purpose]]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key, critical=False)
    )
    if profile.subject_alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(profile.general_names()), critical=False
        )
    return builder.sign(issuer_key, digest)


def backdate(text: str) -> timedelta:
    """`-10m`, `-5d`, `-1w2d`: how far before now a certificate starts (as
    community.crypto writes relative times); a ValueError names the value."""
    match = _RELATIVE.fullmatch(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a relative time before now, such as -10m, -12h or -5d")
    weeks, days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def validity(
    issuer: x509.Certificate, now: datetime, not_before: str, days: int, issuer_not_after: datetime
) -> tuple[datetime, datetime]:
    """Start and end of a new leaf: backdated as configured, never past its CA."""
    start = now - backdate(not_before)
    end = min(now + timedelta(days=days), issuer_not_after)
    if end <= now:
        raise ValueError(f"the CA certificate {issuer.subject.rfc4514_string()} has expired")
    return start, end


def renewal_due(
    certificate: x509.Certificate,
    now: datetime,
    fraction_left: float,
    jitter: float = 0.0,
    force: bool = False,
) -> bool:
    """Forced, or due by the rule every pisec certificate is renewed by
    (pisec_rules.renewal_due_with_jitter: expired, not yet valid, or with
    less than `fraction_left` plus this certificate's share of `jitter` for
    the day of its lifetime left)."""
    return force or renewal_due_with_jitter(
        not_before(certificate),
        not_after(certificate),
        now,
        fraction_left,
        jitter,
        serial_hex(certificate.serial_number),
    )


def reported_public_key(pem: str | None) -> Any:
    """The public key a host reports for its served key (PEM), or None when
    it is empty or not a public key."""
    text = (pem or "").strip()
    try:
        return serialization.load_pem_public_key(text.encode("ascii")) if text else None
    except (ValueError, UnicodeEncodeError, TypeError):
        return None


def kept_certificate(
    existing_pem: str | None,
    generation: Generation,
    profile: Profile,
    public_key: Any,
    revoked_serials: set[str],
    now: datetime,
) -> x509.Certificate | None:
    """The certificate a host reports as served, when the CA keeps it: valid
    now, not revoked, and byte for byte what this CA (`generation`, the one
    that signs now) signed and recorded for this key and profile. None
    otherwise. Everything but the CA's own files comes from the host and is
    not trusted: a host that misreports its key only keeps a certificate
    its key cannot use."""
    pem = (existing_pem or "").strip()
    if not pem or public_key is None:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    if not (not_before(certificate) <= now < not_after(certificate)):
        return None
    if serial_hex(certificate.serial_number) in revoked_serials:
        return None
    if not certificate_signed_by(certificate, generation.certificate):
        return None
    if certificate_mismatch(certificate, profile, public_key) is not None:
        return None
    if not is_recorded(generation, certificate):
        return None
    return certificate
