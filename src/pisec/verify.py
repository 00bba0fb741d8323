"""`pisec verify`: does this certificate do its job under this CA?

Each check is independent and reported with a reason; a check without the
input it needs (no --key, no --host, no --crl) is skipped, not passed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pisec.certfile import load_certificates, load_crl, load_private_key
from pisec.errors import PisecError
from pisec.extensions import damaged_extensions
from pisec.facts import issued_by, read_name, signed_by
from pisec.names import name_text
from pisec.oids import KEY_ERRORS
from pisec.rules import serial_hex

Status = Literal["pass", "fail", "skip"]
MAX_CHAIN = 8


@dataclass(frozen=True)
class VerifyOptions:
    ca_file: Path
    cert_file: Path
    key_file: Path | None = None
    host: str | None = None
    crl_file: Path | None = None
    at: datetime | None = None
    client: bool = False


@dataclass(frozen=True)
class VerifyCheck:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    certificate: str
    subject: str
    serial: str
    at: datetime
    chain: tuple[str, ...]
    checks: tuple[VerifyCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PisecError("--at", f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_ca(certificate: x509.Certificate) -> tuple[bool, int | None]:
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False, None
    return basic.ca, basic.path_length


def build_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
) -> tuple[list[x509.Certificate], str]:
    """The path from the leaf to a trust anchor, or ([], why not)."""
    path = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN):
        anchor = next((ca for ca in anchors if issued_by(current, ca)), None)
        if anchor is not None:
            if current is not anchor:
                path.append(anchor)
            problem = _constraints_problem(path)
            return ([], problem) if problem else (path, "")
        parent = next((c for c in intermediates if c not in path and issued_by(current, c)), None)
        if parent is None:
            return [], _no_issuer(current, [*anchors, *intermediates])
        path.append(parent)
        current = parent
    return [], f"chain longer than {MAX_CHAIN} certificates"


def _no_issuer(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> str:
    issuer = name_text(certificate.issuer) or "(empty name)"
    uncheckable = any(signed_by(certificate, c) is None for c in candidates)
    if uncheckable:
        return (
            f"cannot check the signature on {name_text(certificate.subject) or '(empty name)'}: "
            "pisec does not support its algorithm or its issuer's key"
        )
    return f"no issuer for {issuer} among the CA and intermediates"


def _constraints_problem(path: list[x509.Certificate]) -> str:
    for depth, issuer in enumerate(path[1:], start=0):
        ca, path_length = _is_ca(issuer)
        if not ca:
            return f"{name_text(issuer.subject)} signs certificates but is not a CA (no CA:TRUE)"
        if path_length is not None and depth > path_length:
            return (
                f"{name_text(issuer.subject)} allows {path_length} intermediates below it, "
                f"found {depth}"
            )
    return ""


def _host_check(certificate: x509.Certificate, host: str) -> VerifyCheck:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return VerifyCheck("host", "fail", "the certificate has no subject alternative names")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address in names.get_values_for_type(x509.IPAddress):
            return VerifyCheck("host", "pass", f"IP Address:{address} is in the SAN")
        return VerifyCheck("host", "fail", f"IP Address:{address} is not in the SAN")
    wanted = host.rstrip(".").lower()
    for dns in names.get_values_for_type(x509.DNSName):
        candidate = dns.rstrip(".").lower()
        if candidate == wanted:
            return VerifyCheck("host", "pass", f"DNS:{dns} is in the SAN")
        # A wildcard stands for exactly one leftmost label.
        if candidate.startswith("*.") and wanted.partition(".")[2] == candidate[2:]:
            return VerifyCheck("host", "pass", f"DNS:{dns} matches {host}")
    return VerifyCheck("host", "fail", f"{host} is not in the SAN")


def _purpose_check(certificate: x509.Certificate, client: bool) -> VerifyCheck:
    purpose = "client" if client else "server"
    wanted = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    ca, _ = _is_ca(certificate)
    if ca:
        return VerifyCheck("purpose", "fail", f"a CA certificate, not a TLS {purpose} certificate")
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if wanted not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            return VerifyCheck(
                "purpose", "fail", f"extended key usage does not allow TLS {purpose} authentication"
            )
    except x509.ExtensionNotFound:
        pass
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (usage.digital_signature or usage.key_encipherment or usage.key_agreement):
            return VerifyCheck("purpose", "fail", "key usage allows no TLS handshake")
    except x509.ExtensionNotFound:
        pass
    return VerifyCheck("purpose", "pass", f"fit for TLS {purpose} authentication")


def _key_check(certificate: x509.Certificate, key_file: Path) -> VerifyCheck:
    key = load_private_key(key_file)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    try:
        theirs = certificate.public_key().public_bytes(serialization.Encoding.DER, spki)
    except KEY_ERRORS:
        return VerifyCheck("key", "fail", "pisec cannot read the certificate's public key")
    if ours == theirs:
        return VerifyCheck("key", "pass", f"{key_file} is the certificate's private key")
    return VerifyCheck("key", "fail", f"{key_file} does not belong to this certificate")


def _revocation_check(
    certificate: x509.Certificate, crl_file: Path, issuer: x509.Certificate, at: datetime
) -> VerifyCheck:
    crl = load_crl(crl_file)
    try:
        signed = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (*KEY_ERRORS, TypeError):
        signed = False
    if crl.issuer != issuer.subject or not signed:
        return VerifyCheck(
            "revocation", "fail", f"{crl_file} was not issued by the certificate's issuer"
        )
    next_update = crl.next_update_utc
    if next_update is not None and next_update < at:
        return VerifyCheck(
            "revocation", "fail", f"the CRL expired (nextUpdate {next_update:%Y-%m-%dT%H:%M:%SZ})"
        )
    revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if revoked is not None and revoked.revocation_date_utc <= at:
        return VerifyCheck(
            "revocation", "fail", f"revoked on {revoked.revocation_date_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    return VerifyCheck("revocation", "pass", f"not listed in {crl_file}")


def _require_intact(certificates: list[x509.Certificate], path: Path) -> None:
    """A certificate whose extensions do not parse is refused, as `openssl
    verify` refuses it: no check could be trusted on it."""
    for number, certificate in enumerate(certificates, start=1):
        subject, issuer = read_name(certificate, "subject"), read_name(certificate, "issuer")
        for name in (subject, issuer):
            if isinstance(name, str):
                raise PisecError(str(path), f"certificate {number}: {name}")
        damaged = damaged_extensions(certificate)
        if damaged:
            label = name_text(certificate.subject) or "(empty subject)"
            raise PisecError(str(path), f"certificate {number} ({label}): {damaged[0].problem}")


def verify(options: VerifyOptions) -> VerifyResult:
    at = options.at or datetime.now(UTC)
    anchors = load_certificates(options.ca_file, "CA certificate")
    certificates = load_certificates(options.cert_file, "certificate")
    _require_intact(anchors, options.ca_file)
    _require_intact(certificates, options.cert_file)
    leaf, intermediates = certificates[0], certificates[1:]
    checks: list[VerifyCheck] = []

    chain, why = build_chain(leaf, intermediates, anchors)
    if chain:
        checks.append(
            VerifyCheck("chain", "pass", " -> ".join(name_text(c.subject) for c in chain))
        )
    else:
        checks.append(VerifyCheck("chain", "fail", why))

    if options.key_file is None:
        checks.append(VerifyCheck("key", "skip", "no --key given"))
    else:
        checks.append(_key_check(leaf, options.key_file))

    if options.host is None:
        checks.append(VerifyCheck("host", "skip", "no --host given"))
    else:
        checks.append(_host_check(leaf, options.host))

    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for certificate in chain or [leaf]:
        label = name_text(certificate.subject)
        if at < certificate.not_valid_before_utc:
            checks.append(
                VerifyCheck(
                    "validity",
                    "fail",
                    f"{label} is not valid before {_iso(certificate.not_valid_before_utc)}",
                )
            )
            break
        if at > certificate.not_valid_after_utc:
            checks.append(
                VerifyCheck(
                    "validity",
                    "fail",
                    f"{label} expired {_iso(certificate.not_valid_after_utc)}",
                )
            )
            break
    else:
        checks.append(VerifyCheck("validity", "pass", f"valid at {stamp}"))

    checks.append(_purpose_check(leaf, options.client))

    if options.crl_file is None:
        checks.append(VerifyCheck("revocation", "skip", "no --crl given"))
    elif len(chain) < 2:
        checks.append(VerifyCheck("revocation", "fail", "cannot check revocation without a chain"))
    else:
        checks.append(_revocation_check(leaf, options.crl_file, chain[1], at))

    return VerifyResult(
        certificate=str(options.cert_file),
        subject=leaf.subject.rfc4514_string(),
        serial=serial_hex(leaf.serial_number),
        at=at,
        chain=tuple(c.subject.rfc4514_string() for c in chain),
        checks=tuple(checks),
    )
