"""What a public key is, named the way openssl names it, also for a key
cryptography cannot load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
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

from pisec import der
from pisec.oids import (
    ASN1_CURVES,
    EC_PUBLIC_KEY,
    KEY_ALGORITHMS,
    KEY_ERRORS,
    NIST_CURVES,
    OTHER_CURVES,
)


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
            NIST_CURVES.get(name, name),
            "id-ecPublicKey",
            _sized_heading(key.key_size),
            ASN1_CURVES.get(name, name),
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
    if info.algorithm == EC_PUBLIC_KEY and info.parameter is not None:
        curve = OTHER_CURVES.get(info.parameter, info.parameter)
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
